"""Classify's feed: which runs can classify an image, and with which heads (the Store, the run folders; no Qt)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from db import Changes, RunSummary, Store
from ddae_core.engine.evaluation.certainty import held_out_choice, read_grid
from ddae_core.engine.evaluation.protocols import accuracy_text
from ddae_core.rundir import ACTIVE_STATUSES, MODEL_KINDS, NOISY_HEAD, PROBE_HEADS, JobKind
from ddae_core.rundir.figures import percent, points

PROBE_FILE, NOISY_FILE = PROBE_HEADS, NOISY_HEAD


@dataclass(frozen=True)
class HeadChoice:
    """One classifier: a probe run's cell heads (one layer, or its best cell) or a noisy-classifier head."""

    label: str
    run_id: str             # the probe / noisy-classifier run holding the head file
    run_dir: Path
    head: str               # "probe" | "noisy" | "aggregate" (an aggregate probe's head over all its cells)
    layer: str | None       # probe layer; None = the best cell's layer

    @property
    def key(self) -> tuple[str, str, str | None]:
        return self.run_id, self.head, self.layer


@dataclass(frozen=True)
class RunChoice:
    run_id: str
    label: str
    heads: tuple[HeadChoice, ...]


def _probe_heads(store: Store, probe: RunSummary) -> list[HeadChoice]:
    run_id, run_dir = probe.id, store.run_dir(probe.id)
    if not (run_dir / PROBE_FILE).is_file():
        return []
    cells = [c for c in store.grid_cells(run_id) if c.accuracy is not None and math.isfinite(c.accuracy)]
    axes = store.grid_axes(run_id)
    layers = list(axes.layers) if axes else list(dict.fromkeys(c.layer for c in cells))
    best = max(cells, key=lambda c: c.accuracy, default=None)
    best_text = f" ({best.layer} at t={best.timestep}, {accuracy_text(best.accuracy, probe.best_protocol)})" \
        if best else ""
    grid = read_grid(run_dir)
    if held_out_choice(grid):           # the grid chose on held-out images: that cell, with its test accuracy
        chosen = grid["best"]
        best_text = (f" ({chosen['layer']} at t={chosen['timestep']}, "
                     f"{accuracy_text(chosen['accuracy'], probe.best_protocol)}, held-out choice)")
    heads = [HeadChoice(f"probe: best cell{best_text}", run_id, run_dir, "probe", None)]
    aggregate = (grid or {}).get("aggregate")
    if aggregate:
        heads.append(HeadChoice(f"probe: learned aggregation over all cells ({percent(aggregate['accuracy'])}, "
                                f"{points(aggregate['gain'] or 0.0)} points over the best cell)", run_id, run_dir,
                                "aggregate", None))
    for layer in layers:
        layer_cells = [c for c in cells if c.layer == layer]
        top = max((c.accuracy for c in layer_cells), default=None)
        note = f" (best {percent(top)})" if top is not None else ""
        heads.append(HeadChoice(f"probe: {layer}{note}", run_id, run_dir, "probe", layer))
    return heads


def _noisy_heads(store: Store, noisy: RunSummary) -> list[HeadChoice]:
    run_id, run_dir = noisy.id, store.run_dir(noisy.id)
    if not (run_dir / NOISY_FILE).is_file():
        return []
    layer = ((store.get_run(run_id).spec.get("options") or {}).get("layer")) or "?"
    return [HeadChoice(f"noisy classifier on {layer}", run_id, run_dir, "noisy", None)]


def find_classifiers(store: Store) -> list[RunChoice]:
    """Train runs with a probe or noisy-classifier child that finished its head, then those runs themselves.

    Newest first within each group: the model a user just trained and probed comes up by default.
    """
    choices, evaluations = [], []
    for run in store.list_runs(kind=(JobKind.TRAIN, JobKind.IMPORT, JobKind.PROBE, JobKind.NOISY_CLASSIFIER)):
        if run.kind == JobKind.PROBE:
            heads = _probe_heads(store, run)
        elif run.kind == JobKind.NOISY_CLASSIFIER:
            heads = _noisy_heads(store, run)
        else:
            children = store.children(run.id)
            # Of each kind, the child with a head file that the run's row quotes (its headline grid), else the
            # newest (children come oldest first).
            heads = []
            for kind, finder in ((JobKind.PROBE, _probe_heads), (JobKind.NOISY_CLASSIFIER, _noisy_heads)):
                of_kind = reversed([c for c in children if c.kind == kind])
                for child in sorted(of_kind, key=lambda c: c.id != run.best_grid):
                    found = finder(store, child)
                    if found:
                        heads += found
                        break
        if heads:
            label = f"{run.name} ({run.kind})" if run.name != run.id else run.id
            (choices if run.kind in MODEL_KINDS else evaluations).append(
                RunChoice(run.id, label, tuple(heads)))
    return choices + evaluations


class ClassifyFeed:
    """The runs that can classify, listed again only when a head may have come or gone (on the hub's reader)."""

    def __init__(self, store: Store):
        self.store = store

    def read(self, changes: Changes | None) -> list[RunChoice] | None:
        """find_classifiers() when `changes` is None or may have brought a head; None otherwise."""
        # Heads appear when a probe or noisy-classifier run finishes (it writes its head file last);
        # a running job's metric points change nothing here, and arrive several times a second.
        if changes is not None and not (changes.full or changes.deleted
                                        or any(r.status not in ACTIVE_STATUSES for r in changes.runs)):
            return None
        return find_classifiers(self.store)
