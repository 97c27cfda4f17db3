"""TradeoffPlot: linear-probe accuracy against FID, one point per checkpoint (the paper's trade-off).

A run's points are joined in step order. Alone, a run's points are coloured by training step on a
colour bar; beside other runs (Compare) each run keeps its own colour. Few points carry their step as
text; the point nearest the mouse is read out; set_selected_step rings one checkpoint in every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ddae_core.rundir.figures import percent

from . import export
from .common import BACKGROUND, FOREGROUND, GRID_ALPHA, follow_mouse, set_axis_label, style_plot
from .elided import ElidedLabel

STEP_MAP = "viridis"
LINE_GREY = QColor("#9a9a9a")
MAX_LABELS = 20             # points per plot that carry their step as text; more would overlap
POINT_SIZE = 11


@dataclass
class _Run:
    name: str
    label: str
    color: QColor | None            # None: coloured by step
    steps: np.ndarray
    fids: np.ndarray
    accuracies: np.ndarray          # 0..1
    line: pg.PlotDataItem
    scatter: pg.ScatterPlotItem


class TradeoffPlot(QWidget):
    """Accuracy (y, %) against FID (x) per checkpoint, for one run or several; PNG, SVG and CSV export."""

    def __init__(self, title: str = "Probe accuracy against FID", parent=None):
        super().__init__(parent)
        self._title = title
        self._runs: dict[str, _Run] = {}
        self._labels: list[pg.TextItem] = []
        self._selected: int | None = None

        self.layout_widget = pg.GraphicsLayoutWidget()
        self.layout_widget.setBackground(BACKGROUND)
        self.graphics = self.layout_widget.ci
        self.plot: pg.PlotItem = self.graphics.addPlot(row=0, col=0)
        style_plot(self.plot, title)
        self.plot.showGrid(x=True, y=True, alpha=GRID_ALPHA)
        set_axis_label(self.plot, "bottom", "FID (lower is better)")
        set_axis_label(self.plot, "left", "linear probe accuracy (%)")
        self.legend = self.plot.addLegend(offset=(-10, 10), labelTextColor=FOREGROUND, labelTextSize="9pt",
                                          brush=pg.mkBrush(255, 255, 255, 210), pen=pg.mkPen("#c0c0c0"))
        self.colorbar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=STEP_MAP, interactive=False, width=14,
                                        label="checkpoint step")
        self.colorbar.axis.setPen(pg.mkPen(FOREGROUND))
        self.colorbar.axis.setTextPen(pg.mkPen(FOREGROUND))
        self.colorbar.axis.enableAutoSIPrefix(False)
        self.graphics.addItem(self.colorbar, row=0, col=1)
        self.ring = pg.ScatterPlotItem(size=POINT_SIZE + 9, pen=pg.mkPen("#ff2d2d", width=2.5), brush=None)
        self.ring.setZValue(20)
        self.plot.addItem(self.ring)

        self.readout = ElidedLabel("")       # a long hover text elides instead of widening the window
        self.readout.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.readout.setStyleSheet("color: #303030;")
        follow_mouse(self.layout_widget.scene(), self.plot, self.readout, self.readout_at)
        self.export_button = export.make_export_button(
            self, lambda: self._title or "accuracy_vs_fid",
            {"png": self.export_png, "svg": self.export_svg, "csv": self.export_csv}, views=[self.layout_widget])
        self.empty_label = QLabel()
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setStyleSheet("color: #606060; font-size: 11pt; padding: 24px;")
        self.empty_label.hide()
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 0)
        bar.addWidget(self.readout, 1)
        bar.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addWidget(self.layout_widget, 1)
        layout.addWidget(self.empty_label, 1)
        self._restyle()

    # Data.
    def set_series(self, name: str, steps, fids, accuracies, label: str | None = None,
                   color: QColor | str | None = None) -> None:
        """A run's checkpoints: steps, FIDs and accuracies (0..1), one of each per point, any order."""
        steps_a = np.asarray(steps, dtype=np.float64).reshape(-1)
        fids_a = np.asarray(fids, dtype=np.float64).reshape(-1)
        acc_a = np.asarray(accuracies, dtype=np.float64).reshape(-1)
        if not len(steps_a) == len(fids_a) == len(acc_a):
            raise ValueError(f"Series {name!r} needs as many FIDs and accuracies as steps.")
        order = np.argsort(steps_a, kind="stable")
        run = self._runs.get(name)
        if run is None:
            line = self.plot.plot([], [], name=label or name)
            scatter = pg.ScatterPlotItem(size=POINT_SIZE, hoverable=False)
            scatter.setZValue(10)
            self.plot.addItem(scatter)
            run = self._runs[name] = _Run(name, label or name, None, np.empty(0), np.empty(0), np.empty(0),
                                          line, scatter)
        elif label is not None and label != run.label:
            run.label = label
            self.legend.removeItem(run.line)
            self.legend.addItem(run.line, label)
        run.color = QColor(color) if color is not None else None
        run.steps, run.fids, run.accuracies = steps_a[order], fids_a[order], acc_a[order]
        self._restyle()

    def remove_series(self, name: str) -> None:
        run = self._runs.pop(name, None)
        if run is not None:
            self.legend.removeItem(run.line)
            self.plot.removeItem(run.line)
            self.plot.removeItem(run.scatter)
            self._restyle()

    def clear_series(self) -> None:
        for name in list(self._runs):
            self.remove_series(name)

    def series_names(self) -> list[str]:
        return list(self._runs)

    def label(self, name: str) -> str:
        """The legend label of a run's series (its name, marked when its FIDs are non-standard)."""
        return self._runs[name].label

    def points(self, name: str) -> list[tuple[int, float, float]]:
        """(step, FID, accuracy 0..1) of a run's points, by step."""
        run = self._runs[name]
        return [(int(s), float(f), float(a)) for s, f, a in zip(run.steps, run.fids, run.accuracies)]

    def point_colors(self, name: str) -> list[QColor]:
        """The fill colour of each of a run's points, by step (for tests and legends)."""
        return [QColor(c) for c in self._brushes(self._runs[name])]

    def set_empty_text(self, text: str) -> None:
        """Shown instead of the axes while no run has a point ('' shows the empty axes)."""
        self.empty_label.setText(text)
        self._update_empty()

    def is_empty(self) -> bool:
        return not any(len(r.steps) for r in self._runs.values())

    def set_selected_step(self, step: int | None) -> None:
        """Ring the points of checkpoint `step` (each run's nearest step; None: no ring)."""
        self._selected = None if step is None else int(step)
        self._draw_ring()

    def set_title(self, title: str) -> None:
        self._title = title
        self.plot.setTitle(title, color=FOREGROUND, size="11pt")

    # Drawing.
    def _step_range(self) -> tuple[float, float]:
        steps = np.concatenate([r.steps for r in self._runs.values() if r.color is None] or [np.empty(0)])
        if not len(steps):
            return 0.0, 1.0
        lo, hi = float(steps.min()), float(steps.max())
        return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)

    def _brushes(self, run: _Run) -> list[QColor]:
        if run.color is not None:
            return [run.color] * len(run.steps)
        lo, hi = self._step_range()
        cmap = pg.colormap.get(STEP_MAP)
        return list(cmap.map((run.steps - lo) / (hi - lo), mode=pg.ColorMap.QCOLOR)) if len(run.steps) else []

    def _restyle(self) -> None:
        by_step = any(r.color is None for r in self._runs.values())
        self.colorbar.setVisible(by_step)
        if by_step:
            self.colorbar.setLevels(self._step_range())
        for label in self._labels:
            self.plot.removeItem(label)
        self._labels = []
        total = sum(len(r.steps) for r in self._runs.values())
        for run in self._runs.values():
            x, y = run.fids, 100.0 * run.accuracies
            run.line.setData(x, y)
            run.line.setPen(pg.mkPen(run.color if run.color is not None else LINE_GREY, width=1.4,
                                     style=Qt.PenStyle.SolidLine))
            brushes = [pg.mkBrush(c) for c in self._brushes(run)]
            run.scatter.setData(x=x, y=y, brush=brushes, pen=pg.mkPen("#303030", width=0.8), size=POINT_SIZE,
                                data=run.steps.astype(int).tolist())
            if total <= MAX_LABELS:
                for s, fx, ay in zip(run.steps, x, y):
                    text = pg.TextItem(f"{int(s)}", color=FOREGROUND, anchor=(-0.15, 1.05))
                    text.setPos(float(fx), float(ay))
                    self.plot.addItem(text)
                    self._labels.append(text)
        self.legend.setVisible(len(self._runs) > 1 or any(r.color is not None for r in self._runs.values()))
        self._draw_ring()
        self._update_empty()

    def _draw_ring(self) -> None:
        if self._selected is None:
            self.ring.setData([], [])
            return
        xs, ys = [], []
        for run in self._runs.values():
            if len(run.steps):
                i = int(np.argmin(np.abs(run.steps - self._selected)))
                if run.steps[i] == self._selected:
                    xs.append(run.fids[i])
                    ys.append(100.0 * run.accuracies[i])
        self.ring.setData(xs, ys)

    def _update_empty(self) -> None:
        empty = bool(self.empty_label.text()) and self.is_empty()
        self.empty_label.setVisible(empty)
        self.layout_widget.setVisible(not empty)

    # Hover readout.
    def readout_at(self, x: float, y: float) -> str:
        """The point nearest (x = FID, y = accuracy %) in view-relative distance: 'run: step 800, FID 4.09, 90.05%'."""
        (x0, x1), (y0, y1) = self.plot.getViewBox().viewRange()
        best, text = None, ""
        for run in self._runs.values():
            if not len(run.steps):
                continue
            d = ((run.fids - x) / max(x1 - x0, 1e-12)) ** 2 + ((100 * run.accuracies - y) / max(y1 - y0, 1e-12)) ** 2
            i = int(np.argmin(d))
            if best is None or d[i] < best:
                best = d[i]
                who = f"{run.label}: " if len(self._runs) > 1 else ""
                text = f"{who}step {int(run.steps[i])}, FID {run.fids[i]:.4g}, {percent(run.accuracies[i], places=2)}"
        return text if best is not None and best < 0.01 else ""


    # Export.
    def export_png(self, path: str | Path) -> Path:
        return export.export_png(self.graphics, path)

    def export_svg(self, path: str | Path) -> Path:
        return export.export_svg(self.graphics, path)

    def export_csv(self, path: str | Path) -> Path:
        """Every point: series,step,fid,accuracy (a fraction 0..1)."""
        rows = [(run.label, int(s), float(f), float(a))
                for run in self._runs.values() for s, f, a in zip(run.steps, run.fids, run.accuracies)]
        return export.write_csv(path, ("series", "step", "fid", "accuracy"), rows)
