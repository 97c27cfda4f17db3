"""The Compare view's tables: a thin Qt item model over plain rows, and the rows it shows."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QColor

from ddae_core.engine.evaluation.protocols import NO_BASELINES, SHORT_LABELS
from ddae_core.rundir.figures import percent

from .feed import MISSING, RunBundle


class Percent(float):
    """An accuracy 0..1 shown as a percentage; CSV still gets the fraction."""


class RowsModel(QAbstractTableModel):
    """Read-only table of plain values; column 0 may carry a colour swatch per row (the run's colour)."""

    def __init__(self, headers: Sequence[str] = (), parent=None):
        super().__init__(parent)
        self._headers: list[str] = list(headers)
        self._rows: list[tuple] = []
        self._colors: list[QColor | None] = []

    def set_rows(self, headers: Sequence[str], rows: Sequence[Sequence], colors: Sequence[QColor | None] = ()) -> None:
        self.beginResetModel()
        self._headers = list(headers)
        self._rows = [tuple(r) for r in rows]
        self._colors = list(colors) + [None] * (len(self._rows) - len(colors))
        self.endResetModel()

    def headers(self) -> list[str]:
        return list(self._headers)

    def rows(self) -> list[tuple]:
        return list(self._rows)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._headers)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        value = self._rows[index.row()][index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return format_value(value)
        if role == Qt.ItemDataRole.DecorationRole and index.column() == 0:
            return self._colors[index.row()]
        if role == Qt.ItemDataRole.TextAlignmentRole and isinstance(value, (int, float)):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return value
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self._headers[section] if section < len(self._headers) else None
        return None


def format_value(value) -> str:
    if value is None or value is MISSING:
        return "—"
    if isinstance(value, Percent):
        return "—" if math.isnan(value) else percent(value)
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def summary_table(bundles: Sequence[RunBundle], final_loss: dict[str, float | None],
                  noisy_best: dict[str, float | None]) -> tuple[list[str], list[tuple]]:
    """Headers and one row per run: kind, best cell, its accuracy, final loss, noisy best, the grid's protocol
    and baselines, sample/* metrics."""
    metric_keys = sorted({k for b in bundles for k in b.sample_metrics})
    headers = ["run", "kind", "best cell", "best accuracy", "final loss", "best noisy accuracy", "protocol",
               "raw pixels", "random init", *metric_keys]
    rows = []
    for b in bundles:
        best = b.best_cell()
        rows.append((b.name, b.run.kind,
                     f"{best[1]} @ t={best[0]}" if best else None,
                     Percent(best[2]) if best else None,
                     final_loss.get(b.id), _percent(noisy_best.get(b.id)),
                     SHORT_LABELS.get(b.protocol, b.protocol) if b.protocol else None,
                     *_baselines(b, best is not None),
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
