"""The Run view's panels, one per kind of result; each takes RunUpdates and changes its plots in place.

Every panel is built from the shared widgets (CurvePlot, GridHeatmap, SampleViewer,
AlignUniformPlot), so each plot has its own export menu (PNG, SVG, CSV). The probe grid's
tab is in grid_panel and the Panel base in panel_base; both are importable from here as before.
"""

from __future__ import annotations

from array import array

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from ddae_core.rundir.figures import percent

from ..colors import colors_for
from ..formats import STATUS_COLORS, when
from ..widgets.align_uniform import AlignUniformPlot
from ..widgets.curves import CurvePlot
from ..widgets.samples import SampleViewer
from .feed import History, RunSummary, RunUpdate
from .grid_panel import GridPanel as GridPanel, grid_status as grid_status, heatmap_title as heatmap_title
from .panel_base import Panel


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
