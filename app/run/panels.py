"""The Run view's panels, one per kind of result; each takes RunUpdates and changes its plots in place.

Every panel is built from the shared widgets (CurvePlot, GridHeatmap, SampleViewer,
AlignUniformPlot), so each plot has its own export menu (PNG, SVG, CSV).
"""

from __future__ import annotations

from array import array

from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ddae_core.engine.evaluation.certainty import edge_note, grid_sample, held_out_choice, selection_words
from ddae_core.engine.evaluation.preview import preview_words
from ddae_core.engine.evaluation.protocols import BASELINE_LABELS, SHORT_LABELS
from ddae_core.rundir.figures import percent, points

from ..colors import colors_for
from ..formats import STATUS_COLORS, when
from ..widgets.align_uniform import AlignUniformPlot
from ..widgets.curves import CurvePlot
from ..widgets.heatmap import GridHeatmap
from ..widgets.samples import SampleViewer
from .feed import History, RunSummary, RunUpdate
from .grid_beside import BesideGrid, with_stand_ins


def feed_curve(plot: CurvePlot, name: str, update: RunUpdate, key: str, label: str | None = None) -> bool:
    """Pass the update's points of `key` to the plot's series `name`; True if there were any."""
    if key in update.replaced:
        h = update.replaced[key]
        plot.set_series(name, h.steps, h.values, h.times, label=label)
        return True
    if key in update.appended:
        h = update.appended[key]
        if h.steps:
            plot.append(name, h.steps, h.values, h.times)
            return True
    return False


class Panel(QWidget):
    """A tab of the Run view. `keys` are the metric keys it shows (the rest go to All metrics)."""

    title = ""

    def keys(self) -> set[str]:
        return set()

    def apply(self, update: RunUpdate) -> None:
        raise NotImplementedError


class TrainingPanel(Panel):
    """The loss curve large; learning rate and images/s beside it.

    The side plots take their points a few frames after the loss curve: each pyqtgraph repaint costs
    milliseconds of Python, and three in one frame would stall the window.
    """

    SIDE_DELAY_MS = (150, 300)

    title = "Training"

    def __init__(self, steps_per_epoch: float | None = None, parent=None):
        super().__init__(parent)
        self.loss = CurvePlot("Training loss", "loss")
        self.lr = CurvePlot("Learning rate", "lr")
        self.speed = CurvePlot("Throughput", "images / s")
        self.loss.set_smoothing(0.6)
        for plot in (self.loss, self.lr, self.speed):
            plot.set_steps_per_epoch(steps_per_epoch)
        side = QSplitter(Qt.Orientation.Vertical)
        side.addWidget(self.lr)
        side.addWidget(self.speed)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.loss)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([640, 400])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    def keys(self) -> set[str]:
        return {"loss/train", "lr", "images_per_s"}

    def apply(self, update: RunUpdate) -> None:
        feed_curve(self.loss, "loss/train", update, "loss/train", "train loss")
        if update.first:
            feed_curve(self.lr, "lr", update, "lr")
            feed_curve(self.speed, "images_per_s", update, "images_per_s", "images/s")
            return
        for delay, (plot, key, label) in zip(self.SIDE_DELAY_MS, ((self.lr, "lr", None),
                                                                  (self.speed, "images_per_s", "images/s"))):
            if key in update.replaced or key in update.appended:
                QTimer.singleShot(delay, self, lambda p=plot, k=key, lb=label: feed_curve(p, k, update, k, lb))


class SamplesPanel(Panel):
    title = "Samples"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.viewer = SampleViewer("Samples by training step")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.viewer)

    def apply(self, update: RunUpdate) -> None:
        if update.images is not None:
            self.viewer.set_images(update.images)


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


class AlignPanel(Panel):
    """Alignment against uniformity through the checkpoints, one line per layer (Figure 3)."""

    title = "Alignment / uniformity"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = AlignUniformPlot()
        self._data: dict[str, dict[str, dict[int, float]]] = {}   # layer -> {"align"|"uniform": {step: v}}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    def keys(self) -> set[str]:
        return {k for layer in self._data for k in (f"align/{layer}", f"uniform/{layer}")}

    @staticmethod
    def wants(key: str) -> bool:
        return key.startswith(("align/", "uniform/"))

    def apply(self, update: RunUpdate) -> None:
        touched = set()
        for source in (update.replaced, update.appended):
            for key, h in source.items():
                if not self.wants(key):
                    continue
                what, layer = key.split("/", 1)
                series = self._data.setdefault(layer, {"align": {}, "uniform": {}})[what]
                if source is update.replaced:
                    series.clear()
                series.update(zip(h.steps, h.values))
                touched.add(layer)
        if not touched:
            return
        # Distinct colours for the layers shown together (a per-key colour can repeat among a few).
        colors = colors_for(self._data)
        for layer in self._data:
            d = self._data[layer]
            steps = sorted(set(d["align"]) & set(d["uniform"]))
            if steps:
                self.plot.set_layer(layer, steps, [d["align"][s] for s in steps], [d["uniform"][s] for s in steps],
                                    color=colors[layer])


class CurvesPanel(Panel):
    """Fixed curves for one evaluation kind: e.g. accuracy vs noise level, or accuracy per epoch."""

    def __init__(self, title: str, plots: list[tuple[str, str, str, list[tuple[str, str]]]], parent=None):
        """plots: (plot title, y label, x label, [(metric key, legend label)])."""
        super().__init__(parent)
        self.title = title
        self.plots: list[tuple[CurvePlot, list[tuple[str, str]]]] = []
        splitter = QSplitter(Qt.Orientation.Horizontal)
        for plot_title, y_label, x_label, series in plots:
            plot = CurvePlot(plot_title, y_label)
            plot.set_fixed_x(x_label)
            self.plots.append((plot, series))
            splitter.addWidget(plot)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    def keys(self) -> set[str]:
        return {key for _, series in self.plots for key, _ in series}

    def apply(self, update: RunUpdate) -> None:
        for plot, series in self.plots:
            for key, label in series:
                feed_curve(plot, key, update, key, label)


def noisy_panel() -> CurvesPanel:
    return CurvesPanel("Accuracy vs noise", [
        ("Test accuracy vs noise level", "accuracy", "noise level (timestep or sigma index)",
         [("noisy/accuracy", "accuracy")]),
        ("Classifier training loss", "loss", "epoch", [("noisy/train_loss", "train loss")])])


def finetune_panel() -> CurvesPanel:
    return CurvesPanel("Fine-tuning", [
        ("Test accuracy per epoch", "accuracy", "epoch", [("finetune/test_accuracy", "test accuracy")]),
        ("Training loss per epoch", "loss", "epoch", [("finetune/train_loss", "train loss")])])


class MetricsPanel(Panel):
    """Every other metric of the run: tick keys in the list to plot them."""

    title = "All metrics"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setMaximumWidth(240)
        self.list.itemChanged.connect(self._toggled)
        self.plot = CurvePlot("Metrics", "value")
        self._data: dict[str, History] = {}
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.list)
        splitter.addWidget(self.plot)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    def apply(self, update: RunUpdate) -> None:
        for source in (update.replaced, update.appended):
            for key, h in source.items():
                old = self._data.get(key)
                if source is update.appended and old is not None:
                    for mine, new in zip(old, h):
                        mine.extend(new)        # in place: no copy of a long curve per refresh
                    if self._checked(key):
                        self.plot.append(key, h.steps, h.values, h.times)
                    continue
                self._data[key] = History(array("q", h.steps), array("d", h.values), array("d", h.times))
                if self._item(key) is None:
                    item = QListWidgetItem(key)
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                    item.setCheckState(Qt.CheckState.Unchecked)
                    self.list.blockSignals(True)
                    self.list.addItem(item)
                    self.list.sortItems()
                    self.list.blockSignals(False)
                elif self._checked(key):
                    self.plot.set_series(key, h.steps, h.values, h.times)

    def _item(self, key: str) -> QListWidgetItem | None:
        found = self.list.findItems(key, Qt.MatchFlag.MatchExactly)
        return found[0] if found else None

    def _checked(self, key: str) -> bool:
        item = self._item(key)
        return item is not None and item.checkState() == Qt.CheckState.Checked

    def _toggled(self, item: QListWidgetItem) -> None:
        key = item.text()
        if item.checkState() == Qt.CheckState.Checked and key in self._data:
            h = self._data[key]
            self.plot.set_series(key, h.steps, h.values, h.times)
        else:
            self.plot.remove_series(key)


class ChildrenPanel(Panel):
    """Evaluations of this model (its child runs); double-click one to open it."""

    title = "Evaluations"
    open_run = Signal(str)
    HEADERS = ("Name", "Kind", "Status", "Best acc.", "Created")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.table = QTableWidget(0, len(self.HEADERS))
        self.table.setHorizontalHeaderLabels(self.HEADERS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setColumnWidth(0, 320)
        self.table.cellDoubleClicked.connect(lambda row, _: self.open_run.emit(self.table.item(row, 0).data(
            Qt.ItemDataRole.UserRole)))
        self.hint = QLabel("No evaluations yet. Use Evaluate ▾ above to probe what this model's layers know.")
        self.hint.setStyleSheet("color: #666;")
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.hint)
        layout.addLayout(row)
        layout.addWidget(self.table)

    def apply(self, update: RunUpdate) -> None:
        if update.children is not None:
            self.set_children(update.children)

    def set_children(self, children: list[RunSummary]) -> None:
        self.hint.setVisible(not children)
        self.table.setRowCount(len(children))
        for r, child in enumerate(reversed(children)):
            accuracy = percent(child.best_accuracy, missing="")
            values = (child.name, child.kind, child.status, accuracy, when(child.created))
            for c, text in enumerate(values):
                item = QTableWidgetItem(text)
                if c == 0:
                    item.setData(Qt.ItemDataRole.UserRole, child.id)
                    item.setToolTip(child.id)
                if c == 2:
                    item.setForeground(QBrush(QColor(STATUS_COLORS.get(child.status, "#444444"))))
                self.table.setItem(r, c, item)
