"""AlignUniformPlot: the paper's Figure 3, alignment (x) against uniformity (y) over checkpoints, per layer.

Each layer is one line through its checkpoints in training order; every point is labelled with its
step and arrow heads along the line show which way training moved it. Lower is better on both axes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..colors import color_for
from . import export
from .common import FOREGROUND, GRID_ALPHA, plot_widget, set_axis_label


class _Layer:
    def __init__(self, color: QColor):
        self.color = color
        self.steps = np.empty(0, dtype=np.int64)
        self.alignment = np.empty(0)
        self.uniformity = np.empty(0)
        self.item: pg.PlotDataItem | None = None
        self.labels: list[pg.TextItem] = []
        self.arrows: list[pg.ArrowItem] = []


class AlignUniformPlot(QWidget):
    """Alignment vs uniformity per layer through its checkpoints: set_layer(layer, steps, alignment, uniformity)."""

    def __init__(self, title: str = "Alignment and uniformity over training", parent=None):
        super().__init__(parent)
        self._title = title
        self._layers: dict[str, _Layer] = {}
        self.plot_widget = plot_widget(title)
        self.plot: pg.PlotItem = self.plot_widget.getPlotItem()
        self.plot.showGrid(x=True, y=True, alpha=GRID_ALPHA)
        self.plot.getViewBox().setDefaultPadding(0.08)     # room for the step labels at the edges
        # Bottom right: training moves points from the top right towards the bottom left.
        self.legend = self.plot.addLegend(offset=(-10, -10), labelTextColor=FOREGROUND, labelTextSize="9pt",
                                          brush=pg.mkBrush(255, 255, 255, 210), pen=pg.mkPen("#c0c0c0"))
        set_axis_label(self.plot, "bottom", "alignment (lower is better)")
        set_axis_label(self.plot, "left", "uniformity (lower is better)")
        # Arrow heads are drawn in pixels, so their angle follows the axes' current scale.
        self.plot.getViewBox().sigTransformChanged.connect(self._orient_arrows)

        hint = QLabel("Points are checkpoints (step labelled); arrows point the way training went.")
        hint.setStyleSheet("color: #606060;")
        self.export_button = export.make_export_button(
            self, lambda: self._title or "align_uniform",
            {"png": self.export_png, "svg": self.export_svg, "csv": self.export_csv}, views=[self.plot_widget])
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 0)
        bar.addWidget(hint, 1)
        bar.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addWidget(self.plot_widget, 1)

    def set_layer(self, layer: str, steps, alignment, uniformity, color=None) -> None:
        """Replace one layer's line; points are ordered by step (training order)."""
        steps_a = np.asarray(steps, dtype=np.int64).reshape(-1)
        align_a = np.asarray(alignment, dtype=np.float64).reshape(-1)
        uniform_a = np.asarray(uniformity, dtype=np.float64).reshape(-1)
        if not len(steps_a) == len(align_a) == len(uniform_a):
            raise ValueError(f"Layer {layer!r}: steps, alignment and uniformity differ in length.")
        order = np.argsort(steps_a, kind="stable")
        entry = self._layers.get(layer)
        if entry is None:
            entry = self._layers[layer] = _Layer(QColor(color) if color is not None else color_for(layer))
            entry.item = self.plot.plot([], [], name=layer)
        elif color is not None:
            entry.color = QColor(color)
        entry.steps, entry.alignment, entry.uniformity = steps_a[order], align_a[order], uniform_a[order]
        entry.item.setData(entry.alignment, entry.uniformity, pen=pg.mkPen(entry.color, width=2),
                           symbol="o", symbolSize=7, symbolBrush=entry.color, symbolPen=pg.mkPen("w"))
        self._decorate(entry)

    def remove_layer(self, layer: str) -> None:
        entry = self._layers.pop(layer, None)
        if entry is None:
            return
        for item in [entry.item, *entry.labels, *entry.arrows]:
            self.plot.removeItem(item)
        self.legend.removeItem(entry.item)

    def clear(self) -> None:
        for layer in list(self._layers):
            self.remove_layer(layer)

    def layers(self) -> list[str]:
        return list(self._layers)

    def layer_data(self, layer: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        e = self._layers[layer]
        return e.steps.copy(), e.alignment.copy(), e.uniformity.copy()

    def _decorate(self, entry: _Layer) -> None:
        for item in [*entry.labels, *entry.arrows]:
            self.plot.removeItem(item)
        entry.labels, entry.arrows = [], []
        font = QFont()
        font.setPointSizeF(8)
        for i, (step, x, y) in enumerate(zip(entry.steps, entry.alignment, entry.uniformity)):
            label = pg.TextItem(str(int(step)), color=entry.color.darker(130), anchor=(-0.15, 1.0))
            label.setFont(font)
            label.setPos(float(x), float(y))
            self.plot.addItem(label)
            entry.labels.append(label)
            if i > 0:
                arrow = pg.ArrowItem(headLen=14, tipAngle=34, tailLen=0, pen=pg.mkPen(entry.color),
                                     brush=pg.mkBrush(entry.color))
                # Tip just past the middle of the segment: the point's marker stays visible.
                x0, y0 = entry.alignment[i - 1], entry.uniformity[i - 1]
                arrow.setPos(x0 + 0.6 * (x - x0), y0 + 0.6 * (y - y0))
                self.plot.addItem(arrow)
                entry.arrows.append(arrow)
        self._orient_arrows()

    def _orient_arrows(self, *_) -> None:
        vb = self.plot.getViewBox()
        for entry in self._layers.values():
            for i, arrow in enumerate(entry.arrows, start=1):
                p0 = vb.mapViewToScene(QPointF(entry.alignment[i - 1], entry.uniformity[i - 1]))
                p1 = vb.mapViewToScene(QPointF(entry.alignment[i], entry.uniformity[i]))
                dx, dy = p1.x() - p0.x(), p1.y() - p0.y()
                if dx or dy:
                    # ArrowItem's angle 0 points left; ours points from the earlier checkpoint to the later.
                    arrow.setStyle(angle=180 + math.degrees(math.atan2(dy, dx)))

    # Export.
    def export_png(self, path: str | Path) -> Path:
        return export.export_png(self.plot, path)

    def export_svg(self, path: str | Path) -> Path:
        return export.export_svg(self.plot, path)

    def export_csv(self, path: str | Path) -> Path:
        """layer,step,alignment,uniformity for every point."""
        rows = [(layer, int(s), float(a), float(u)) for layer, e in self._layers.items()
                for s, a, u in zip(e.steps, e.alignment, e.uniformity)]
        return export.write_csv(path, ("layer", "step", "alignment", "uniformity"), rows)
