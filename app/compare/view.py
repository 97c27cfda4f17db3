"""CompareView: two or more runs side by side, the way the paper's figures compare them.

Loss curves overlaid, probe grids on one colour scale with a B - A difference (or, of any families, on
shared axes: log-SNR x relative depth, shared_axes.py), accuracy against
noise level, sample grids on one step slider, a summary table and the spec keys that differ. Each
run keeps one colour in every panel. The feed's reads run on the live hub's reader thread, only while
the view is shown, and only when a compared run (or a run it draws from) changed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..colors import colors_for
from ..live import LiveHub
from ..run.unified import CompareTradeoff
from ..widgets import export
from ..widgets.curves import CurvePlot
from .feed import LOSS_KEY, MISSING, CompareFeed, CompareRead, History, RunBundle, spec_differences
from .panels import GridsPanel, SampleGridsPanel
from .picker import RunPicker, save_selection, saved_selection
from .similarity import SimilarityRunsPanel
from .tables import RowsModel, spec_table, summary_table


class CompareView(QWidget):
    """Compare runs: set_runs([...]); the live hub reads them off the GUI thread while the view is shown."""

    def __init__(self, feed: CompareFeed, hub: LiveHub, parent=None):
        super().__init__(parent)
        self.feed, self.hub = feed, hub
        self.watch_name = f"compare-{id(self)}"
        self._run_ids: list[str] = []
        self._bundles: list[RunBundle] = []
        self._loss_drawn: set[str] = set()             # train runs whose loss curve is drawn (later reads append)
        self._final_loss: dict[str, float | None] = {}
        self._noisy_best: dict[str, float | None] = {}
        self._noise: dict[str, tuple] = {}             # run -> (noisy/accuracy, noisy/sigma) histories
        self.colors = {}

        self.header = QLabel("Choose two or more runs with Runs…, or select them in the Runs tab, to compare them.")
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        self.export_all_button = QPushButton("Export all…")
        self.export_all_button.setToolTip("Write every chart (PNG, SVG) and its data (CSV) into a folder")
        self.export_all_button.clicked.connect(self._ask_export_all)
        self.pick_button = QPushButton("Runs…")
        self.pick_button.setToolTip("Choose the runs to compare")
        self.pick_button.clicked.connect(self.open_picker)
        self.picker: RunPicker | None = None
        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(self.pick_button)
        top.addWidget(self.export_all_button)

        self.loss_plot = CurvePlot("Training loss", LOSS_KEY)
        self.loss_plot.set_empty_text("None of these runs has a training loss curve yet.")
        self.grids = GridsPanel()
        self.noise_plot = CurvePlot("Noisy-classifier accuracy against noise level", "accuracy")
        self.noise_plot.set_fixed_x("noise level (timestep)")
        self.noise_plot.set_empty_text("None of these runs has a noise-conditional classifier yet: Evaluate ▾ → "
                                       "Noise-conditional classifier on a train run measures its accuracy at "
                                       "each noise level.")
        self.sigma_box = QCheckBox("x = σ (log axis)")
        self.sigma_box.setToolTip("Plot against the noise's standard deviation instead of the timestep")
        self.sigma_box.toggled.connect(lambda _: self._draw_noise())
        self.noise_plot.add_tool(self.sigma_box)
        self.samples = SampleGridsPanel()
        self.tradeoff = CompareTradeoff()
        self.similarity = SimilarityRunsPanel()

        self.summary_model = RowsModel()
        self.spec_model = RowsModel()
        self.summary_table = self._table(self.summary_model)
        self.spec_table = self._table(self.spec_model)
        self.spec_label = QLabel("Spec keys that differ")
        self.spec_label.setWordWrap(True)
        tables = QSplitter(Qt.Orientation.Vertical)
        for title, table in (("Best cells, final loss and sample quality", self.summary_table),
                             (None, self.spec_table)):
            box = QWidget()
            box_layout = QVBoxLayout(box)
            box_layout.setContentsMargins(0, 0, 0, 0)
            box_layout.addWidget(QLabel(title) if title else self.spec_label)
            box_layout.addWidget(table, 1)
            tables.addWidget(box)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.loss_plot, "Loss")
        self.tabs.addTab(self.grids, "Probe grids")
        self.tabs.addTab(self.noise_plot, "Accuracy vs noise")
        self.tabs.addTab(self.tradeoff, "Accuracy vs FID")
        self.tabs.addTab(self.samples, "Samples")
        self.tabs.addTab(self.similarity, "Similarity")
        self.tabs.addTab(tables, "Summary and spec")
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)
        saved = saved_selection(self.feed.workspace)      # the runs compared when the app last closed
        if saved:
            self.set_runs(saved, remember=False)

    @staticmethod
    def _table(model: RowsModel) -> QTableView:
        table = QTableView()
        table.setModel(model)
        table.setAlternatingRowColors(True)
        table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        table.verticalHeader().setVisible(False)
        return table

    # Selection and refresh.
    def set_runs(self, run_ids: list[str], remember: bool = True) -> None:
        """Show these runs (ids, in the order given); everything is read anew. Remembered for the next start."""
        self._run_ids = list(dict.fromkeys(run_ids))
        if remember:
            save_selection(self.feed.workspace, self._run_ids)
        self.colors = colors_for(self._run_ids)
        self.loss_plot.clear_series()
        self.noise_plot.clear_series()
        self._loss_drawn.clear()
        selection = self.feed.select(self._run_ids)
        # A new watcher: the late reads of the runs shown before are dropped.
        self.hub.watch(self.watch_name, selection.read, self._show, request=True, paused=not self.isVisible())

    @property
    def export_context(self) -> str:
        """Exported files start with the compared runs' names."""
        return "compare " + " vs ".join(b.name for b in self._bundles[:3]) if self._bundles else "compare"

    def open_picker(self) -> RunPicker:
        """The run checklist (window-modal); OK compares the ticked runs."""
        picker = self.picker = RunPicker(self.feed.runs(), self._run_ids, self)
        picker.accepted.connect(lambda: self.set_runs(picker.checked()))
        picker.open()
        return picker

    def run_ids(self) -> list[str]:
        return list(self._run_ids)

    def bundles(self) -> list[RunBundle]:
        return list(self._bundles)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.hub.resume(self.watch_name)     # reads once if the runs changed while hidden

    def hideEvent(self, event) -> None:
        super().hideEvent(event)
        self.hub.pause(self.watch_name)

    def closeEvent(self, event) -> None:
        self.hub.unwatch(self.watch_name)
        super().closeEvent(event)

    def _show(self, read: CompareRead) -> None:
        """On the GUI thread: draw what the hub read for the shown runs."""
        self._bundles = read.bundles
        self._update_header(read.missing)
        self._draw_loss(read.losses)
        self._noise = read.noise
        for run_id, (accuracy, _) in read.noise.items():
            self._noisy_best[run_id] = float(np.nanmax(np.asarray(accuracy.values)))
        self._draw_noise()
        self.tradeoff.update_runs(read.checkpoints, self._bundles, self.colors)
        if read.rebuild:
            self.grids.set_bundles(self._bundles, self.colors)
            self.samples.set_bundles(self._bundles, self.colors)
        else:
            self.grids.update_cells(self._bundles)
            self.samples.update_images(self._bundles)
        self.similarity.set_bundles(self._bundles, self.colors)
        self._fill_tables()

    def _update_header(self, missing: list[str]) -> None:
        chips = "  ".join(f"<span style='color:{self.colors[b.id].name()}'>&#9632;</span> {b.name}"
                          for b in self._bundles)
        text = f"Comparing {len(self._bundles)} runs: {chips}" if self._bundles else \
            "Choose two or more runs with Runs…, or select them in the Runs tab, to compare them."
        if missing:
            text += f"<br><i>{len(missing)} selected run(s) no longer exist and are left out.</i>"
        self.header.setText(text)

    # Panels.
    def _draw_loss(self, losses: dict[str, History]) -> None:
        """One loss curve per train run: evaluations of one parent share its curve (named after the parent)."""
        sharing: dict[str, list[RunBundle]] = {}
        for b in self._bundles:
            if b.train_id:
                sharing.setdefault(b.train_id, []).append(b)
        for name in self.loss_plot.series_names():
            if name not in sharing:
                self.loss_plot.remove_series(name)
                self._loss_drawn.discard(name)
        for train_id, bundles in sharing.items():
            first = next((b for b in bundles if b.id == train_id), bundles[0])
            self.loss_plot.set_steps_per_epoch(first.steps_per_epoch, name=train_id)
            history = losses.get(train_id)
            if history is not None and history.steps:
                if train_id not in self._loss_drawn:
                    label = first.name if first.id == train_id else \
                        f"{first.train_name or train_id} (parent of {', '.join(b.name for b in bundles)})"
                    self.loss_plot.set_series(train_id, history.steps, history.values, history.times,
                                              color=self.colors[first.id], label=label)
                else:
                    self.loss_plot.append(train_id, history.steps, history.values, history.times)
                self._loss_drawn.add(train_id)
                finite = [v for v in history.values[-50:] if v == v]
                if finite:
                    self._final_loss[train_id] = finite[-1]
            for b in bundles:
                if train_id in self._final_loss:
                    self._final_loss[b.id] = self._final_loss[train_id]

    def _draw_noise(self) -> None:
        use_sigma = self.sigma_box.isChecked()
        self.noise_plot.set_fixed_x("noise σ (log scale)" if use_sigma else "noise level (timestep)")
        self.noise_plot.set_log_x(use_sigma)
        names = self.noise_plot.series_names()
        for b in self._bundles:
            if b.id not in self._noise:
                if b.id in names:
                    self.noise_plot.remove_series(b.id)
                continue
            accuracy, sigma = self._noise[b.id]
            steps, values = np.asarray(accuracy.steps, dtype=float), np.asarray(accuracy.values)
            if use_sigma:
                by_step = dict(zip(sigma.steps, sigma.values))
                steps = np.array([by_step.get(int(s), np.nan) for s in steps])
                order = np.argsort(steps)
                steps, values = steps[order], values[order]
            self.noise_plot.set_series(b.id, steps, values, color=self.colors[b.id], label=b.name)
        self.noise_plot.plot.enableAutoRange()

    def _fill_tables(self) -> None:
        headers, rows = summary_table(self._bundles, self._final_loss, self._noisy_best)
        colors = [self.colors[b.id] for b in self._bundles]
        self.summary_model.set_rows(headers, rows, colors)
        differences = spec_differences({b.id: b.run.spec for b in self._bundles})
        headers, rows = spec_table(self._bundles, differences)
        self.spec_model.set_rows(headers, rows)
        self.spec_label.setText(f"Spec keys that differ ({len(rows)})" if rows else
                                "Spec keys that differ: none, these runs share every spec key.")

    # Export.
    def _ask_export_all(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export every chart and table into…",
                                                  str(export.start_folder()))
        if folder:
            try:
                written = self.export_all(Path(folder))
            except OSError as exc:
                self.header.setText(f"Export failed: {exc}")
                return
            export.remember_folder(Path(folder))
            export.confirm_saved(self, f"Saved {len(written)} files into {folder}.")

    def export_all(self, folder: str | Path) -> list[Path]:
        """Every panel's PNG, SVG and CSV, the tables as CSV and the shown sample grids, into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out: list[Path] = []
        for name, plot in (("loss", self.loss_plot), ("accuracy_vs_noise", self.noise_plot)):
            if plot.series_names():
                out += [plot.export_png(folder / f"{name}.png"), plot.export_svg(folder / f"{name}.svg"),
                        plot.export_csv(folder / f"{name}.csv")]
        out += self.grids.export(folder)
        out += self.samples.export(folder)
        out += self.tradeoff.export(folder)
        out += self.similarity.export(folder)
        out.append(export.write_csv(folder / "summary.csv", self.summary_model.headers(), self.summary_model.rows()))
        out.append(export.write_csv(folder / "spec_differences.csv", self.spec_model.headers(),
                                    [[_plain(v) for v in row] for row in self.spec_model.rows()]))
        return out


def _plain(value):
    """A spec value for CSV: lists as their text, a key a run lacks as empty."""
    if value is MISSING:
        return None
    return value if isinstance(value, (int, float, str)) or value is None else str(value)
