"""The probe heatmap over training: a train run's probe grids by checkpoint step, as frames of a movie (no Qt).

Which probe speaks for a checkpoint is the rule of the Accuracy and FID tab (checkpoints.CheckpointReader: sweep
jobs before hand-launched ones, the newest among equals), so both tabs read the same grid at every step. Each
frame holds that grid's finished cells; the best cell of a frame is its highest (ties: the lower noise level, then
the earlier layer, as report.best_cell), and the path is the best cell step by step: the paper's Figure 4, from one
number per checkpoint to the whole grid. A probe's cells are read again only when its row in the index changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from db import RunSummary, Store

from .checkpoints import CheckpointResults

Cell = tuple[int, str, float]           # (timestep, layer, accuracy 0..1)


@dataclass(frozen=True)
class MovieFrame:
    """One checkpoint's grid: its step, the probe run it comes from, and its finished cells."""

    step: int
    probe_run: str
    cells: tuple[Cell, ...]
    final: bool = True                  # False while that probe still runs

    def best(self, timesteps: tuple[int, ...], layers: tuple[str, ...]) -> Cell | None:
        """The highest cell (ties: the lower noise level, then the earlier layer in network order)."""
        if not self.cells:
            return None
        return min(self.cells, key=lambda c: (-c[2], timesteps.index(c[0]), layers.index(c[1])))


@dataclass(frozen=True)
class GridMovie:
    """A train run's grids by step: the axes they share (their union) and one frame per probed checkpoint."""

    timesteps: tuple[int, ...] = ()
    layers: tuple[str, ...] = ()
    labels: tuple[tuple[int, str], ...] = ()     # (timestep, row label) pairs
    frames: tuple[MovieFrame, ...] = ()

    def steps(self) -> list[int]:
        return [f.step for f in self.frames]

    def path(self) -> list[tuple[int, int, str]]:
        """(step, timestep, layer) of each frame's best cell, in step order: the best cell's path across training."""
        out = []
        for frame in self.frames:
            best = frame.best(self.timesteps, self.layers)
            if best is not None:
                out.append((frame.step, best[0], best[1]))
        return out

    def value_range(self) -> tuple[float, float] | None:
        """The lowest and highest cell of all frames: one colour scale for the whole movie."""
        values = [c[2] for f in self.frames for c in f.cells]
        return (min(values), max(values)) if values else None


class MovieReader:
    """Incremental reads of a train run's grids by step (see the module docstring)."""

    def __init__(self, store: Store):
        self.store = store
        self._grids: dict[str, tuple[tuple, tuple[Cell, ...], tuple, tuple, dict]] = {}

    def read(self, checkpoints: CheckpointResults | None, children: list[RunSummary]) -> GridMovie:
        summaries = {c.id: c for c in children}
        frames: list[MovieFrame] = []
        timesteps: dict[int, None] = {}         # ordered sets: every frame's axes, in the order first seen
        layers: dict[str, None] = {}
        labels: dict[int, str] = {}
        for point in (checkpoints.points if checkpoints else ()):
            summary = summaries.get(point.probe_run or "")
            if summary is None:
                continue
            try:
                cells, axes_t, axes_l, names = self._grid(summary)
            except LookupError:         # deleted since the list was read
                continue
            if not cells:
                continue
            frames.append(MovieFrame(point.step, summary.id, cells, point.accuracy_final))
            timesteps.update(dict.fromkeys((*axes_t, *(c[0] for c in cells))))
            layers.update(dict.fromkeys((*axes_l, *(c[1] for c in cells))))
            labels.update(names)
        ordered = tuple(sorted(timesteps))
        return GridMovie(ordered, tuple(layers), tuple((t, labels[t]) for t in ordered if t in labels), tuple(frames))

    def _grid(self, summary: RunSummary) -> tuple[tuple[Cell, ...], tuple, tuple, dict]:
        # A running grid's lower cells leave best_accuracy as it was; its progress moves with every row.
        shape = (summary.status, summary.best_accuracy, summary.progress_done, summary.progress_stage)
        known = self._grids.get(summary.id)
        if known is not None and known[0] == shape:
            return known[1:]
        cells = tuple((c.timestep, c.layer, float(c.accuracy)) for c in self.store.grid_cells(summary.id)
                      if c.accuracy is not None and math.isfinite(c.accuracy))
        axes = self.store.grid_axes(summary.id)
        names = {int(k): str(v) for k, v in (axes.labels if axes else {}).items() if str(k).lstrip("-").isdigit()}
        entry = (shape, cells, tuple(axes.timesteps) if axes else (), tuple(axes.layers) if axes else (), names)
        self._grids[summary.id] = entry
        return entry[1:]
