"""Compare's shared axes: probe grids of different families and runs on log-SNR x relative depth.

A DDPM t, an EDM sigma index and a DiT t name different noise levels; log-SNR (noise_axis.py) puts them on one
axis, and relative depth (a layer's place among its network's taps, 1 the last) does the same for layers.
Two slices of every grid, each a line per run in the run's colour: accuracy against log-SNR at one relative depth
(each grid's nearest layer, or its best layer at each noise level), and accuracy against relative depth at one
log-SNR (each grid's nearest noise level, or its best one). Each line's label keeps its protocol and baselines;
the baselines are dashed lines in its colour. A grid whose schedule is unknown (index only) is named, not drawn.
"""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QGridLayout, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from ddae_core.engine.evaluation.grid_axes import along_depth, along_noise
from ddae_core.engine.evaluation.noise_axis import FAMILY_NAMES
from ddae_core.engine.evaluation.protocols import SHORT_LABELS
from ddae_core.rundir.figures import percent

from ..widgets import export
from ..widgets.common import BACKGROUND, FOREGROUND, follow_mouse, set_axis_label, style_plot
from ..widgets.export import safe_filename
from .feed import RunBundle

SLIDER_STEPS = 100          # the sliders' resolution over relative depth 0..1 and over the grids' log-SNR span


def line_label(b: RunBundle) -> str:
    """`name (DDPM, fast; raw pixels 31.0%, random init 40.2%)`: what a line stands for and against."""
    family = FAMILY_NAMES[b.placement.noise.family] if b.placement and b.placement.noise else "index only"
    protocol = SHORT_LABELS.get(b.protocol or "fast", b.protocol or "fast")
    marks = ", ".join(f"{name} {percent(v)}" for name, v in b.baselines.items()) or "no baselines"
    return f"{b.name} ({family}, {protocol}; {marks})"


class _Slice:
    """One plot of the panel: a line per run, its baselines dashed, and the control choosing the slice."""

    def __init__(self, title: str, x_label: str, best_text: str):
        self.widget = pg.PlotWidget()
        self.widget.setBackground(BACKGROUND)
        self.plot = self.widget.getPlotItem()
        style_plot(self.plot, title)
        self.plot.setMenuEnabled(False)
        set_axis_label(self.plot, "bottom", x_label)
        set_axis_label(self.plot, "left", "accuracy (%)")
        self.plot.getAxis("left").setScale(100.0)
        self.legend = self.plot.addLegend(offset=(-10, 10), labelTextColor=FOREGROUND)
        self.best = QCheckBox(best_text)
        self.best.setChecked(True)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setValue(SLIDER_STEPS)
        self.slider.setEnabled(False)
        self.best.toggled.connect(lambda on: self.slider.setEnabled(not on))
        self.value = QLabel("")
        self.readout = QLabel("")
        self.lines: dict[str, list[tuple[float, float, int, str]]] = {}    # run id -> its points as drawn
        self.labels: dict[str, str] = {}
        self.bundles: dict[str, RunBundle] = {}
        follow_mouse(self.widget.scene(), self.plot, self.readout, self.readout_at)

    def box(self) -> QWidget:
        holder = QWidget()
        layout = QVBoxLayout(holder)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.best)
        row.addWidget(self.slider, 1)
        row.addWidget(self.value)
        layout.addLayout(row)
        layout.addWidget(self.widget, 1)
        layout.addWidget(self.readout)
        return holder

    def draw(self, lines: dict[str, list[tuple[float, float, int, str]]], bundles: list[RunBundle],
             colors: dict[str, QColor]) -> None:
        self.plot.clear()                   # a handful of short lines, redrawn only when a control or a grid moves
        self.legend.clear()
        self.lines, self.labels = lines, {b.id: line_label(b) for b in bundles if b.id in lines}
        self.bundles = {b.id: b for b in bundles}
        for b in bundles:
            points = lines.get(b.id)
            if not points:
                continue
            pen = pg.mkPen(colors[b.id], width=2)
            self.plot.addItem(pg.PlotDataItem([p[0] for p in points], [p[1] for p in points], pen=pen, symbol="o",
                                              symbolSize=7, symbolBrush=colors[b.id], symbolPen=pen,
                                              name=self.labels[b.id]))
            for value in b.baselines.values():
                dash = pg.mkPen(colors[b.id], width=1, style=Qt.PenStyle.DashLine)
                self.plot.addItem(pg.InfiniteLine(pos=value, angle=0, pen=dash))
        self.plot.enableAutoRange()

    def readout_at(self, x: float, y: float) -> str:
        """The drawn point nearest the mouse: `run: out_4 (depth 0.86) at t=11, log-SNR 6.12: 12.5%`."""
        (x0, x1), (y0, y1) = self.plot.viewRange()       # distance in screen proportions, not in mixed units
        width, height = (x1 - x0) or 1.0, (y1 - y0) or 1.0
        points = [(abs(p[0] - x) / width + abs(p[1] - y) / height, run_id, p)
                  for run_id, line in self.lines.items() for p in line]
        if not points:
            return ""
        _, run_id, (_, acc, t, layer) = min(points)
        b = self.bundles[run_id]
        depth = b.placement.depths([layer])[0].get(layer) if b.placement else None
        where = b.placement.noise.describe(t) if b.placement and b.placement.noise else f"index {t}"
        return f"{b.name}: {layer}" + (f" (depth {depth:.2f})" if depth is not None else "") + \
            f" at {where}: {percent(acc)}"

    def name(self, run_id: str) -> str:
        return self.bundles[run_id].name if run_id in self.bundles else run_id


class SharedAxesPanel(QWidget):
    """Every compared grid on log-SNR x relative depth: accuracy against log-SNR and against relative depth."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._bundles: list[RunBundle] = []
        self._colors: dict[str, QColor] = {}
        self.by_noise = _Slice("Accuracy against log-SNR", "log-SNR (high: little noise)",
                               "best layer at each noise level")
        self.by_depth = _Slice("Accuracy against relative depth", "relative depth (layer's place among its "
                               "network's taps; 1: the last)", "each grid's best noise level")
        for piece in (self.by_noise, self.by_depth):
            piece.best.toggled.connect(lambda _: self.redraw())
            piece.slider.valueChanged.connect(lambda _: self.redraw())
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #606060;")
        plots = QGridLayout()
        plots.addWidget(self.by_noise.box(), 0, 0)
        plots.addWidget(self.by_depth.box(), 0, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addLayout(plots, 1)

    def set_bundles(self, bundles: list[RunBundle], colors: dict[str, QColor]) -> None:
        self._bundles = [b for b in bundles if b.finished_cells()]
        self._colors = colors
        self.redraw()

    def placed(self) -> list[RunBundle]:
        """The grids drawn: those whose rows have a log-SNR."""
        return [b for b in self._bundles if b.placement and b.placement.log_snrs(_timesteps(b))]

    def span(self) -> tuple[float, float]:
        """The log-SNR range of every drawn grid's rows (the log-SNR slider's ends)."""
        values = [v for b in self.placed() for v in b.placement.log_snrs(_timesteps(b)).values()]
        return (min(values), max(values)) if values else (0.0, 1.0)

    def chosen_depth(self) -> float | None:
        return None if self.by_noise.best.isChecked() else self.by_noise.slider.value() / SLIDER_STEPS

    def chosen_log_snr(self) -> float | None:
        if self.by_depth.best.isChecked():
            return None
        lo, hi = self.span()
        return lo + self.by_depth.slider.value() / SLIDER_STEPS * (hi - lo)

    def redraw(self) -> None:
        depth, log_snr = self.chosen_depth(), self.chosen_log_snr()
        self.by_noise.value.setText("best" if depth is None else f"depth {depth:.2f}")
        self.by_depth.value.setText("best" if log_snr is None else f"log-SNR {log_snr:.2f}")
        by_noise, by_depth = {}, {}
        placed = self.placed()
        for b in placed:
            snr = b.placement.log_snrs(_timesteps(b))
            depths, _ = b.placement.depths(_layers(b))
            cells = b.finished_cells()
            by_noise[b.id] = along_noise(cells, snr, depths, depth)
            by_depth[b.id] = along_depth(cells, snr, depths, log_snr)
        self.by_noise.draw(by_noise, placed, self._colors)
        self.by_depth.draw(by_depth, placed, self._colors)
        self.message.setText(self._describe(placed))

    def _describe(self, placed: list[RunBundle]) -> str:
        if not self._bundles:
            return "None of these runs has a probe grid yet."
        families = sorted({FAMILY_NAMES[b.placement.noise.family] for b in placed})
        text = (f"{len(placed)} grid(s) of {', '.join(families) or 'no known family'} on shared axes: log-SNR "
                "from each family's own schedule, depth as each layer's place among its network's taps. Dashed: "
                "each grid's baselines, in its colour.")
        guessed = [b.name for b in placed if b.placement.depths(_layers(b))[1] == "grid"]
        if guessed:
            text += f" Depth counted in the grid's own layers (network unknown): {', '.join(guessed)}."
        index_only = [b.name for b in self._bundles if b not in placed]
        if index_only:
            text += f" Index only, not drawn (noise schedule unknown): {', '.join(index_only)}."
        return text

    def export(self, folder: Path) -> list[Path]:
        """Both plots as PNG, and their points as CSV (run, x, accuracy, timestep, layer)."""
        out = []
        for name, piece in (("shared_log_snr", self.by_noise), ("shared_depth", self.by_depth)):
            if not piece.lines:
                continue
            out.append(export.export_png(piece.plot, folder / f"{name}.png"))
            rows = [(piece.name(run_id), *p) for run_id, points in piece.lines.items() for p in points]
            out.append(export.write_csv(folder / f"{safe_filename(name)}.csv",
                                        ("run", "log_snr" if piece is self.by_noise else "relative_depth",
                                         "accuracy", "timestep", "layer"), rows))
        return out


def _timesteps(b: RunBundle) -> list[int]:
    return list(b.axes.timesteps) if b.axes else sorted({t for t, _ in b.finished_cells()})


def _layers(b: RunBundle) -> list[str]:
    return list(b.axes.layers) if b.axes else list(dict.fromkeys(layer for _, layer in b.finished_cells()))
