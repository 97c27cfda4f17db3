"""The Compare view's tables: a thin Qt item model over plain rows, and the rows it shows."""

from __future__ import annotations

from collections.abc import Sequence

from ddae_core.engine.evaluation.protocols import NO_BASELINES, SHORT_LABELS

from ..widgets.rows import Percent, RowsModel, format_value
from .feed import MISSING, RunBundle

__all__ = ["Percent", "RowsModel", "format_value", "spec_table", "summary_table"]


def summary_table(bundles: Sequence[RunBundle], final_loss: dict[str, float | None],
                  noisy_best: dict[str, float | None]) -> tuple[list[str], list[tuple]]:
    """Headers and one row per run: kind, best cell, its accuracy (a segmentation grid's mIoU in a column of its
    own, never called accuracy), final loss, noisy best, the grid's protocol and baselines, sample/* and
    similarity/* metrics."""
    metric_keys = sorted({k for b in bundles for k in b.sample_metrics})
    miou = any(b.measure == "mIoU" for b in bundles)
    headers = ["run", "kind", "best cell", "best accuracy", *(["best mIoU"] if miou else []), "final loss",
               "best noisy accuracy", "protocol", "raw pixels", "random init", *metric_keys]
    rows = []
    for b in bundles:
        best = b.best_cell()
        value = Percent(best[2]) if best else None
        rows.append((b.name, b.run.kind,
                     f"{best[1]} @ t={best[0]}" if best else None,
                     value if b.measure == "accuracy" else None,
                     *([value if b.measure == "mIoU" else None] if miou else []),
                     final_loss.get(b.id), _percent(noisy_best.get(b.id)),
                     SHORT_LABELS.get(b.protocol, b.protocol) if b.protocol else None,
                     *_baselines(b, best is not None and b.measure == "accuracy"),
                     *(b.sample_metrics.get(k) for k in metric_keys)))
    return headers, rows


def _baselines(b: RunBundle, has_best: bool) -> tuple:
    """The grid's raw-pixel and random-init accuracies; 'no baselines' where that grid measured none."""
    if has_best and not b.baselines:
        return NO_BASELINES, NO_BASELINES
    return _percent(b.baselines.get("raw pixels")), _percent(b.baselines.get("random init"))


def _percent(value: float | None) -> Percent | None:
    return None if value is None else Percent(value)


def spec_table(bundles: Sequence[RunBundle], differences: list[tuple[str, dict[str, object]]]
               ) -> tuple[list[str], list[tuple]]:
    """Headers (key, then one column per run) and one row per differing spec key."""
    headers = ["spec key", *(b.name for b in bundles)]
    rows = [(key, *(values.get(b.id, MISSING) for b in bundles)) for key, values in differences]
    return headers, rows
