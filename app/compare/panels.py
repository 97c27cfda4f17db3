"""Two panels of the Compare view: probe grids side by side with a B - A difference, and synced samples."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSlider,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ddae_core.engine.evaluation.certainty import chance_level, fitted_levels, grid_sample, held_out_choice
from ddae_core.engine.evaluation.noise_axis import FAMILY_NAMES
from ddae_core.rundir.figures import percent

from ..widgets.export import safe_filename
from ..widgets.heatmap import GridHeatmap
from ..widgets.samples import SampleViewer
from .feed import RunBundle, grid_difference
from .shared_axes import SharedAxesPanel

COLUMNS = 3         # heatmaps / sample grids per row before wrapping
GRID_MODES = {"own": "Each grid on its own axes, side by side",
              "shared": "Shared axes (log-SNR x relative depth)"}


def _title_html(name: str, color: QColor) -> str:
    return f"<span style='color:{color.name()}'>&#9632;</span> {name}"


class GridsPanel(QWidget):
    """One heatmap per run with a probe grid, all on one colour scale, and B - A on a diverging scale; or (the
    mode box) every grid on the shared axes, log-SNR x relative depth (shared_axes.py)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._bundles: list[RunBundle] = []
        self._colors: dict[str, QColor] = {}
        self.heatmaps: dict[str, GridHeatmap] = {}
        self._grid = QGridLayout()
        self._grid.setSpacing(6)
        holder = QWidget()
        holder.setLayout(self._grid)
        self.scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(holder)

        self.combo_a = QComboBox()
        self.combo_b = QComboBox()
        self.combo_a.currentIndexChanged.connect(self._update_difference)
        self.combo_b.currentIndexChanged.connect(self._update_difference)
        self.difference = GridHeatmap("B − A")
        self.difference.set_diverging(True)
        self.difference.set_value_name("accuracy difference")
        self.difference.setMinimumSize(320, 200)
        self.message = QLabel("")
        self.message.setStyleSheet("color: #606060;")
        self.message.setWordWrap(True)
        pick = QHBoxLayout()
        pick.addWidget(QLabel("Difference  B:"))
        pick.addWidget(self.combo_b, 1)
        pick.addWidget(QLabel("minus  A:"))
        pick.addWidget(self.combo_a, 1)
        self._diff_box = QWidget()
        box = QVBoxLayout(self._diff_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(pick)
        box.addWidget(self.difference, 1)

        own = QWidget()
        own_layout = QVBoxLayout(own)
        own_layout.setContentsMargins(0, 0, 0, 0)
        own_layout.addWidget(self.message)
        own_layout.addWidget(scroll, 3)
        own_layout.addWidget(self._diff_box, 2)
        self.shared = SharedAxesPanel()
        self.stack = QStackedWidget()
        self.stack.addWidget(own)
        self.stack.addWidget(self.shared)
        self.mode = QComboBox()
        for key, text in GRID_MODES.items():
            self.mode.addItem(text, key)
        self.mode.setToolTip("Shared axes place grids of different families (DDPM t, EDM sigma index, DiT t) and "
                             "different networks together: noise as log-SNR, layers as relative depth")
        self.mode.currentIndexChanged.connect(self.stack.setCurrentIndex)
        top = QHBoxLayout()
        top.addWidget(QLabel("Probe grids:"))
        top.addWidget(self.mode)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.stack, 1)

    def set_bundles(self, bundles: list[RunBundle], colors: dict[str, QColor]) -> None:
        """Rebuild for these runs (only those with a probe grid get a heatmap)."""
        self._bundles = [b for b in bundles if b.axes is not None or b.cells]
        self._colors = colors
        for heatmap in self.heatmaps.values():
            self._grid.removeWidget(heatmap)
            heatmap.deleteLater()
        self.heatmaps = {}
        for i, b in enumerate(self._bundles):
            heatmap = GridHeatmap()
            heatmap.set_title(_title_html(b.name if b.measure == "accuracy" else f"{b.name} ({b.measure})",
                                          colors[b.id]))
            heatmap.set_value_name(b.measure)
            heatmap.setMinimumSize(320, 240)
            self.heatmaps[b.id] = heatmap
            self._grid.addWidget(heatmap, i // COLUMNS, i % COLUMNS)
        names = [(b.name, b.id) for b in self._bundles]
        for combo, default in ((self.combo_a, 0), (self.combo_b, 1)):
            with QSignalBlocker(combo):
                combo.clear()
                for name, run_id in names:
                    combo.addItem(name, run_id)
                combo.setCurrentIndex(min(default, len(names) - 1))
        self.update_cells(self._bundles)

    def update_cells(self, bundles: list[RunBundle]) -> None:
        """New cells for the same runs: redraw in place, one shared scale."""
        by_id = {b.id: b for b in bundles}
        self._bundles = [by_id.get(b.id, b) for b in self._bundles]
        # One scale for every grid, reaching down to their baselines and chance, which each heatmap marks, and
        # never narrower than a cell's interval on the fewest test images among them.
        samples = {b.id: grid_sample(b.grid_file) for b in self._bundles}
        values = [v for b in self._bundles for v in b.finished_cells().values()]
        marks = [v for b in self._bundles for v in b.baselines.values()] + \
            [chance_level(k) for _, k in samples.values() if k]
        least = min((n for n, _ in samples.values() if n), default=None)
        lo, hi = fitted_levels(values, least, marks) if values or marks else (0.0, 1.0)
        for b in self._bundles:
            heatmap = self.heatmaps[b.id]
            axes = b.axes
            timesteps = list(axes.timesteps) if axes else sorted({c.timestep for c in b.cells})
            layers = list(axes.layers) if axes else list(dict.fromkeys(c.layer for c in b.cells))
            labels = {int(k): v for k, v in axes.labels.items()} if axes else None
            if heatmap.axes() != (timesteps, layers):
                heatmap.set_axes(timesteps, layers, labels)
            heatmap.set_levels(lo, hi)
            heatmap.set_baselines(b.baselines)
            heatmap.set_certainty(*samples[b.id])
            heatmap.set_selected(held_out_choice(b.grid_file))
            heatmap.set_noise_axis(b.placement.noise if b.placement else None)
            heatmap.set_cells((t, layer, acc) for (t, layer), acc in b.finished_cells().items())
        if not self._bundles:
            self.message.setText("None of these runs has a probe grid yet; run a probe grid on them to compare.")
        else:
            measures = " or ".join(dict.fromkeys(b.measure for b in self._bundles))
            self.message.setText(f"{len(self._bundles)} probe grid(s) on one colour scale "
                                 f"({percent(lo).rstrip('%')}–{percent(hi)} {measures}); "
                                 "the best cell of each is outlined.")
        self._update_difference()
        # Shared axes plot accuracy lines on one y axis: an mIoU grid there would read as accuracy.
        self.shared.set_bundles([b for b in self._bundles if b.measure == "accuracy"], self._colors)

    def _update_difference(self) -> None:
        if len(self._bundles) < 2:
            self._diff_box.setVisible(False)
            return
        self._diff_box.setVisible(True)
        by_id = {b.id: b for b in self._bundles}
        a, b = by_id.get(self.combo_a.currentData()), by_id.get(self.combo_b.currentData())
        if a is None or b is None:
            return
        timesteps, layers, labels, diff = grid_difference(a, b)
        self.difference.set_title(f"B − A: {b.name} − {a.name}")
        self.difference.set_value_name(f"{a.measure} difference" if a.measure == b.measure else
                                       f"{b.measure} − {a.measure}")
        self.difference.set_axes(timesteps, layers, labels)
        self.difference.clear_cells()           # set_axes keeps cells that still fit: not wanted here
        self.difference.set_cells((t, layer, v) for (t, layer), v in diff.items())
        families = {FAMILY_NAMES[x.placement.noise.family] for x in (a, b) if x.placement and x.placement.noise}
        status = "" if diff else "These two grids share no finished cell yet."
        if len(families) > 1:
            status = (f"These grids are of different families ({', '.join(sorted(families))}): a row's index names a "
                      "different noise level in each, so read them on shared axes (the box above). " + status)
        self.difference.set_status(status)
        self.difference.set_levels()

    def export(self, folder: Path) -> list[Path]:
        out = []
        for b in self._bundles:
            base = folder / f"grid_{safe_filename(b.name)}"
            heatmap = self.heatmaps[b.id]
            out += [heatmap.export_png(base.with_suffix(".png")), heatmap.export_svg(base.with_suffix(".svg")),
                    heatmap.export_csv(base.with_suffix(".csv"))]
        if len(self._bundles) >= 2:
            base = folder / "grid_difference"
            out += [self.difference.export_png(base.with_suffix(".png")),
                    self.difference.export_svg(base.with_suffix(".svg")),
                    self.difference.export_csv(base.with_suffix(".csv"))]
        return out + self.shared.export(folder)


class SampleGridsPanel(QWidget):
    """Each run's sample grids side by side, driven by one step slider (each snaps to its nearest step)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.viewers: dict[str, SampleViewer] = {}
        self._steps: list[int] = []
        self._grid = QGridLayout()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.valueChanged.connect(self._on_slider)
        self.step_label = QLabel("no samples yet")
        self.message = QLabel("")
        self.message.setStyleSheet("color: #606060;")
        row = QHBoxLayout()
        row.addWidget(QLabel("Step"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.step_label)
        # The grids scroll rather than squeeze or clip when many runs share a small window.
        holder = QWidget()
        holder.setLayout(self._grid)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(holder)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(self.scroll, 1)
        layout.addLayout(row)

    def set_bundles(self, bundles: list[RunBundle], colors: dict[str, QColor]) -> None:
        for viewer in self.viewers.values():
            self._grid.removeWidget(viewer)
            viewer.deleteLater()
        self.viewers = {}
        # Evaluations of one train run show its sample grids once, under the train run's name.
        shown: set[str | None] = set()
        with_samples = [b for b in bundles if b.samples and not (b.train_id in shown or shown.add(b.train_id))]
        for i, b in enumerate(with_samples):
            name = b.name if b.train_id in (None, b.id) else (b.train_name or b.train_id)
            viewer = SampleViewer(name)
            viewer.title_label.setText(_title_html(name, colors[b.id]))
            viewer.set_slider_visible(False)
            viewer.setMinimumSize(240, 240)
            self.viewers[b.id] = viewer
            self._grid.addWidget(viewer, i // COLUMNS, i % COLUMNS)
        self.message.setText("" if with_samples else "None of these runs has sample grids yet.")
        self.update_images(bundles)

    def update_images(self, bundles: list[RunBundle]) -> None:
        following = not self._steps or self.slider.value() == len(self._steps) - 1
        for b in bundles:
            if b.id in self.viewers:
                self.viewers[b.id].set_images([(s, p) for s, p in b.samples])
        self._steps = sorted({s for v in self.viewers.values() for s in v.steps()})
        with QSignalBlocker(self.slider):
            self.slider.setRange(0, max(0, len(self._steps) - 1))
            self.slider.setEnabled(len(self._steps) > 1)
            if following and self._steps:
                self.slider.setValue(len(self._steps) - 1)
        self._on_slider(self.slider.value())

    def set_step(self, step: int) -> None:
        if self._steps:
            index = min(range(len(self._steps)), key=lambda i: (abs(self._steps[i] - step), i))
            self.slider.setValue(index)
            self._on_slider(index)

    def current_step(self) -> int | None:
        return self._steps[self.slider.value()] if self._steps else None

    def _on_slider(self, index: int) -> None:
        if not self._steps:
            self.step_label.setText("no samples yet")
            return
        step = self._steps[min(index, len(self._steps) - 1)]
        self.step_label.setText(f"step {step}")
        for viewer in self.viewers.values():
            with QSignalBlocker(viewer):
                viewer.set_step(step)

    def export(self, folder: Path) -> list[Path]:
        out = []
        for run_id, viewer in self.viewers.items():
            if viewer.current_step() is not None and not viewer.message():
                name = safe_filename(viewer.title() or run_id)
                out.append(viewer.export_png(folder / f"samples_{name}_step_{viewer.current_step()}.png"))
        return out
