"""The unified view (issue 14): a train run's probe accuracy and FID per checkpoint, side by side.

Accuracy and FID against the training step on linked x axes, accuracy against FID (one point per
checkpoint, coloured by step: the paper's trade-off), and the two rows the paper reports: the
best-probe checkpoint and the best-FID checkpoint. The data come from the run's fid and probe
children (app.run.checkpoints), read off the GUI thread by RunFeed and by Compare's feed; these
widgets only draw them. CompareTradeoff puts several runs' trade-offs on one axis.
"""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ddae_core.engine.evaluation.fid_label import FID_KEY, NONSTANDARD, NONSTANDARD_KEY, fid_name

from ..widgets import export
from ..widgets.curves import CurvePlot
from ..widgets.rows import Percent, RowsModel
from ..widgets.samples import SampleViewer
from ..widgets.tradeoff import TradeoffPlot
from .checkpoints import CheckpointResults, best_table
from .feed import RunUpdate
from .panels import CurvesPanel, Panel

ACCURACY = "probe accuracy"
FID = "FID"


def _table(model: RowsModel) -> QTableView:
    table = QTableView()
    table.setModel(model)
    table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    table.verticalHeader().setVisible(False)
    return table


def _mark_points(plot: CurvePlot) -> None:
    """Checkpoints are few and far apart: a dot on each, not only the line through them."""
    for item in plot.plot.listDataItems():
        color = pg.mkPen(item.opts["pen"]).color()
        item.setSymbol("o")
        item.setSymbolSize(6)
        item.setSymbolPen(color)
        item.setSymbolBrush(color)


def _displayed(headers: list[str], rows: list[tuple]) -> list[tuple]:
    """Accuracy columns as percentages on screen (CSV keeps the fractions)."""
    columns = {i for i, h in enumerate(headers) if "accuracy" in h}
    return [tuple(Percent(v) if i in columns and v is not None else v for i, v in enumerate(row)) for row in rows]


class UnifiedPanel(Panel):
    """A train run's checkpoints: accuracy and FID by step, accuracy against FID, best-probe vs best-FID."""

    title = "Accuracy and FID"

    def __init__(self, steps_per_epoch: float | None = None, parent=None):
        super().__init__(parent)
        self.steps_per_epoch = steps_per_epoch
        self.results: CheckpointResults | None = None
        self.accuracy_plot = CurvePlot("Linear probe accuracy by checkpoint", "accuracy (%)")
        self.fid_plot = CurvePlot("FID by checkpoint", "FID (lower is better)")
        for plot in (self.accuracy_plot, self.fid_plot):
            plot.set_fixed_x("training step")
            plot.legend.setVisible(False)       # one curve each, named by its title
        self.fid_plot.plot.setXLink(self.accuracy_plot.plot)        # one step axis for both
        self.tradeoff = TradeoffPlot("Probe accuracy against FID, coloured by step")
        # The grids of samples the FID jobs scored, one per checkpoint; the shown one is ringed in the scatter.
        self.samples = SampleViewer("Samples scored for FID")
        self.samples.stepChanged.connect(self.tradeoff.set_selected_step)
        self.table_model = RowsModel()
        self.table = _table(self.table_model)
        self.table.setMaximumHeight(96)
        self.table.selectionModel().selectionChanged.connect(self._row_selected)
        self.table_export = export.make_export_button(self, "best checkpoints", {"csv": self.export_table_csv})
        self.readme_row = ""
        self.copy_row = QPushButton("Copy README row")
        self.copy_row.setToolTip("Copy the best-probe vs best-FID pair as a row of the official DDAE README's table "
                                 "(HTML; steps where the README counts epochs)")
        self.copy_row.setEnabled(False)
        self.copy_row.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.readme_row))
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #606060;")
        self.empty = QLabel()
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: #606060; font-size: 12pt; padding: 24px;")

        curves = QSplitter(Qt.Orientation.Vertical)
        curves.addWidget(self.accuracy_plot)
        curves.addWidget(self.fid_plot)
        plots = QSplitter(Qt.Orientation.Horizontal)
        plots.addWidget(curves)
        plots.addWidget(self.tradeoff)
        plots.addWidget(self.samples)
        plots.setSizes([460, 520, 280])
        table_bar = QHBoxLayout()
        table_bar.addWidget(QLabel("<b>Best checkpoints</b> (the paper's best-probe vs best-FID rows)"), 1)
        table_bar.addWidget(self.copy_row)
        table_bar.addWidget(self.table_export)
        content = QWidget()
        box = QVBoxLayout(content)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.status)
        box.addWidget(plots, 1)
        box.addLayout(table_bar)
        box.addWidget(self.table)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.empty)
        self.pages.addWidget(content)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.pages)

    def apply(self, update: RunUpdate) -> None:
        if update.checkpoints is not None:
            self.show_results(update.checkpoints, update.record.name)
        if update.readme_row is not None:
            self.readme_row = update.readme_row
            self.copy_row.setEnabled(bool(update.readme_row))

    def show_results(self, results: CheckpointResults, run_name: str) -> None:
        """Draw `results` (all of them: they are a few points per checkpoint)."""
        self.results = results
        status = results.status_text(results.run_id)     # the id: a name may need quoting in a shell
        self.empty.setText(status)
        self.pages.setCurrentIndex(1 if results.points or results.waiting else 0)
        self.status.setText(status)
        accuracy, fid, paired = results.with_accuracy(), results.with_fid(), results.paired()
        for plot, name, points, value in ((self.accuracy_plot, ACCURACY, accuracy, lambda p: 100 * p.accuracy),
                                          (self.fid_plot, FID, fid, lambda p: p.fid)):
            if points:
                label = fid_name(results.fid_standard) if plot is self.fid_plot else name
                plot.set_series(name, [p.step for p in points], [value(p) for p in points], label=label)
                _mark_points(plot)
            else:
                plot.remove_series(name)
        self.accuracy_plot.set_empty_text("No probe accuracy yet." if not accuracy else "")
        self.fid_plot.set_empty_text("No FID yet." if not fid else "")
        if paired:
            self.tradeoff.set_series("checkpoints", [p.step for p in paired], [p.fid for p in paired],
                                     [p.accuracy for p in paired], label=tradeoff_label(run_name, results))
        else:
            self.tradeoff.remove_series("checkpoints")
        self.tradeoff.set_empty_text("A point appears for each checkpoint with both an FID and a probe accuracy.")
        headers, rows = best_table(results, self.steps_per_epoch)
        self.table_model.set_rows(headers, _displayed(headers, rows))
        self.samples.set_images([(p.step, p.samples) for p in fid if p.samples is not None])
        self.tradeoff.set_selected_step(self.samples.current_step())

    def table_rows(self) -> tuple[list[str], list[tuple]]:
        """The best-checkpoint table as plain values (accuracies as fractions 0..1)."""
        if self.results is None:
            return best_table(CheckpointResults(""), self.steps_per_epoch)
        return best_table(self.results, self.steps_per_epoch)

    def export_table_csv(self, path: str | Path) -> Path:
        headers, rows = self.table_rows()
        return export.write_csv(path, headers, rows)

    def _row_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        step = self.table_model.rows()[rows[0].row()][1] if rows else None
        self.tradeoff.set_selected_step(step)
        if step is not None and step in self.samples.steps():
            self.samples.set_step(step)

    def select_row(self, row: int) -> None:
        flags = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
        self.table.selectionModel().select(self.table_model.index(row, 0), flags)


class CompareTradeoff(QWidget):
    """Accuracy against FID for several train runs on one axis, with each run's best-probe and best-FID rows."""

    HEADERS = ("run", "best probe: step", "best probe: FID", "best probe: accuracy", "best FID: step",
               "best FID: FID", "best FID: accuracy")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.results: dict[str, CheckpointResults] = {}
        self.plot = TradeoffPlot("Probe accuracy against FID, one point per checkpoint")
        self.plot.set_empty_text("None of these runs has a checkpoint with both an FID and a probe accuracy yet: "
                                 "`ddae sweep --run RUN` queues FID and probe jobs per checkpoint.")
        self.model = RowsModel()
        self.table = _table(self.model)
        self.table.setMaximumHeight(150)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.plot)
        splitter.addWidget(self.table)
        splitter.setStretchFactor(0, 4)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)

    def update_runs(self, checkpoints: dict[str, CheckpointResults], bundles, colors: dict[str, QColor]) -> None:
        """One series per train run behind the compared runs (evaluations of one model share it).

        checkpoints: train run -> its results, as Compare's feed read them (a run missing here is gone).
        """
        shown: dict[str, object] = {}
        for b in bundles:
            if b.train_id and b.train_id not in shown:
                shown[b.train_id] = b
        for name in self.plot.series_names():
            if name not in shown:
                self.plot.remove_series(name)
        rows, row_colors = [], []
        self.results = {}
        for train_id, b in shown.items():
            results = checkpoints.get(train_id)
            if results is None:
                continue
            self.results[train_id] = results
            label = tradeoff_label(b.name if b.id == train_id else (b.train_name or train_id), results)
            paired = results.paired()
            if paired:
                self.plot.set_series(train_id, [p.step for p in paired], [p.fid for p in paired],
                                     [p.accuracy for p in paired], label=label, color=colors[b.id])
            else:
                self.plot.remove_series(train_id)
            probe, fid = results.best_probe(), results.best_fid()
            rows.append((label, *(v for p in (probe, fid) for v in
                                  ((p.step, p.fid, Percent(p.accuracy) if p.accuracy is not None else None)
                                   if p else (None, None, None)))))
            row_colors.append(colors[b.id])
        self.model.set_rows(self.HEADERS, rows, row_colors)

    def export(self, folder: Path) -> list[Path]:
        if not self.plot.series_names():
            return []
        base = Path(folder) / "accuracy_vs_fid"
        return [self.plot.export_png(base.with_suffix(".png")), self.plot.export_svg(base.with_suffix(".svg")),
                self.plot.export_csv(base.with_suffix(".csv")),
                export.write_csv(Path(folder) / "best_checkpoints.csv", self.model.headers(), self.model.rows())]


def tradeoff_label(name: str, results: CheckpointResults) -> str:
    """A run's name in a legend or table of FIDs, with `(non-standard FID)` when one of its FIDs is."""
    return name if results.fid_standard else f"{name} ({NONSTANDARD} FID)"


class FidPanel(CurvesPanel):
    """An fid run's own tab: its FID at each checkpoint it scored, titled non-standard when it is (fid_label.py)."""

    def __init__(self, parent=None):
        super().__init__("FID", [("FID by checkpoint", "FID (lower is better)", "checkpoint step",
                                  [(FID_KEY, "FID")])], parent)
        self.standard = True

    def keys(self) -> set[str]:
        return super().keys() | {NONSTANDARD_KEY}

    def apply(self, update: RunUpdate) -> None:
        marked = update.replaced.get(NONSTANDARD_KEY) or update.appended.get(NONSTANDARD_KEY)
        if marked is not None and len(marked.steps) and self.standard:
            self.standard = False
            self.plots[0][0].set_title(f"{fid_name(False)} by checkpoint")
        super().apply(update)


def fid_panel() -> CurvesPanel:
    return FidPanel()
