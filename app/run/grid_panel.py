"""The Run view's probe-grid tab: the layer x noise heatmap filling in cell by cell, a second grid beside it,
and the status line under it (cells done, what the grid is doing now, the best cell against the baselines)."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QSplitter, QVBoxLayout

from ddae_core.engine.evaluation.certainty import edge_note, grid_sample, held_out_choice, selection_words
from ddae_core.engine.evaluation.preview import preview_words
from ddae_core.engine.evaluation.protocols import BASELINE_LABELS, SHORT_LABELS
from ddae_core.rundir.figures import percent, points

from ..widgets.heatmap import GridHeatmap
from .feed import RunUpdate
from .grid_beside import BesideGrid, with_stand_ins
from .panel_base import Panel


class GridPanel(Panel):
    """The layer x noise heatmap, filling in cell by cell."""

    title = "Probe grid"
    classify_cell = Signal(str, str, int)      # the grid's run, a cell's layer and timestep: open its head in Classify

    def __init__(self, parent=None):
        super().__init__(parent)
        self.heatmap = GridHeatmap("Linear probe accuracy (%), layer x noise level")
        self.heatmap.setToolTip("Click a cell to classify images with its head, at its noise level")
        self.heatmap.cellClicked.connect(self._cell_clicked)
        self.heatmap.set_status("No probe grid yet. Evaluate ▾ → Probe grid queues one; its cells appear here "
                                "as they finish, the best outlined.")
        self.fit = QCheckBox("Fit colours to the cells")
        self.fit.setToolTip("Spread the colour scale over the cells' own range instead of 0-100%, to see which "
                            "layer and noise level stand out")
        self.fit.toggled.connect(self.set_fit)
        self.grey = QCheckBox("Grey out cells within chance")
        self.grey.setToolTip("Blank the cells no further above chance (1 / classes) than 2 standard deviations of "
                             "guessing on the grid's test images: what a guesser could have scored")
        self.grey.toggled.connect(self.heatmap.set_grey_chance)
        self.source: str | None = None
        self.protocol = "fast"
        self.work = ""
        self.grid: dict | None = None          # the grid's grid.json, once saved
        self.linear: dict[tuple[int, str], float] = {}
        self.beside = BesideGrid()
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 0, 4, 0)
        bar.addLayout(self.beside.controls())
        bar.addStretch(1)
        bar.addWidget(self.grey)
        bar.addWidget(self.fit)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.heatmap)
        split.addWidget(self.beside)
        # The two heatmaps share the width as soon as one is shown beside the other.
        self.beside.choice.currentTextChanged.connect(lambda _: split.setSizes([1000, 1000]))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(split, 1)
        layout.addWidget(self.beside.note)
        # Fitted by default: a weak grid on 0-100% is one flat colour; the baselines' marks keep it honest.
        self.set_fit(True)

    def _cell_clicked(self, timestep: int, layer: str) -> None:
        if self.source:
            self.classify_cell.emit(self.source, layer, timestep)

    def set_fit(self, on: bool) -> None:
        with QSignalBlocker(self.fit):
            self.fit.setChecked(on)
        if on:
            self.heatmap.set_levels()
        else:
            self.heatmap.set_levels(0.0, 1.0)

    def apply(self, update: RunUpdate) -> None:
        if update.segmentation is not None:         # a train run's segmentation child, beside its probe grid
            self.beside.set_segmentation(update.segmentation)
        if update.grid_source is None:
            return
        if update.grid_source != self.source:
            self.source, self.grid, self.linear = update.grid_source, None, {}
            self.beside.reset()
            self.heatmap.set_stand_ins(())
            self.heatmap.clear_cells()
            self.heatmap.set_certainty(None, None)
            self.heatmap.set_selected(None)
        if update.axes is not None:
            labels = {int(k): v for k, v in update.axes.labels.items() if str(k).lstrip("-").isdigit()}
            self.heatmap.set_axes(list(update.axes.timesteps), list(update.axes.layers), labels)
            self.beside.set_axes(list(update.axes.timesteps), list(update.axes.layers), labels)
        if update.cells is not None:
            self.linear = {(c.timestep, c.layer): c.accuracy for c in update.cells if c.accuracy is not None}
        if update.knn is not None:
            self.beside.set_knn(update.knn)
        if update.cells is not None or update.knn is not None:
            # The k-NN cells stand in for the linear ones still training, and give way to each as it comes.
            cells, stand_ins = with_stand_ins(self.linear, self.beside.knn)
            self.heatmap.set_stand_ins(stand_ins, preview_words(self.beside.knn) or "k-NN")
            self.heatmap.set_cells(cells)
        if update.baselines is not None:
            self.heatmap.set_baselines({BASELINE_LABELS[k]: v for k, v in update.baselines.items()})
        if update.grid_protocol is not None:
            self.protocol = update.grid_protocol
            self.heatmap.set_title(heatmap_title(self.protocol))
        if update.grid_work is not None:
            self.work = update.grid_work
        if update.grid_file is not None:
            self.grid = update.grid_file
            self.heatmap.set_certainty(*grid_sample(self.grid))
            self.heatmap.set_selected(held_out_choice(self.grid))
            self.beside.set_aggregate(self.grid.get("aggregate"))
        if update.grid_placement is not None:
            self.heatmap.set_noise_axis(update.grid_placement.noise)
        self.heatmap.set_status(grid_status(self.heatmap, self.source, update.record.id, self.protocol, self.work,
                                            self.grid, self.beside.knn))


def heatmap_title(protocol: str) -> str:
    """What the cells are, by the grid's protocol: an attentive or k-NN grid's numbers are never called linear."""
    what = {"attentive": "Attentive probe", "knn": "k-NN"}.get(protocol, "Linear probe")
    return f"{what} accuracy (%), layer x noise level"


def grid_status(heatmap: GridHeatmap, source: str | None, run_id: str, protocol: str, work: str = "",
                grid: dict | None = None, knn: dict | None = None) -> str:
    """`n of N cells (protocol). Best: out_6 at t=11, 72.4% = +60.1 over raw pixels, +41.0 over random init.`

    While the grid runs, what it is doing now (`Now: extract t=51, 62%.`): a row's cells all come at once.
    Once its grid.json is saved (`grid`), how the best cell was chosen, and whether the grid brackets its
    best noise level.
    """
    best = heatmap.best_cell()
    where = "" if source == run_id else f" from probe run {source}"
    total = len(heatmap.axes()[0]) * len(heatmap.axes()[1])
    if total == 0:
        return f"The grid{where} has not started yet; each noise level's row appears when it is done."
    stand_ins = len(heatmap.stand_ins())
    protocol_text = SHORT_LABELS.get(protocol, protocol)
    text = f"{len(heatmap.cells()) - stand_ins} of {total} cells{where}, {protocol_text} protocol."
    if stand_ins:
        text += f" The other {stand_ins} show {preview_words(knn) or 'k-NN'} (marked k) until their heads are trained."
    if work:
        text += f" Now: {work}."
    if best is None:
        return text
    text += f" Best: {best[1]} at t={best[0]}, {percent(best[2])}"
    if grid is not None:
        text += f" ({selection_words(grid)})"
    baselines = heatmap.baselines()
    if baselines:
        text += " = " + ", ".join(f"{points(best[2] - v)} over {label}" for label, v in baselines.items())
    elif grid is not None:
        text += " (run without baselines)"
    else:
        text += " (no baselines yet)"
    text += "."
    if grid is not None and grid.get("complete"):
        high = (grid.get("timestep_range") or [None, None])[1]
        note = edge_note(heatmap.axes()[0], best[0], high)
        text += f" {note}" if note else ""
    return text
