"""Small helpers the widgets share: a light plot style, crisp (nearest-neighbour) image scaling, a careful question."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QMessageBox, QWidget

BACKGROUND = "w"
FOREGROUND = "#303030"
GRID_ALPHA = 0.25


def plot_widget(title: str = "", parent=None) -> pg.PlotWidget:
    """A PlotWidget on white with dark axes, set per widget so other views keep their own style."""
    widget = pg.PlotWidget(parent=parent, background=BACKGROUND)
    style_plot(widget.getPlotItem(), title)
    return widget


def style_plot(plot: pg.PlotItem, title: str = "") -> None:
    # ViewBox paints an invisible (NoPen) border path; Qt 6.12 closes it with "Z", which pyqtgraph 0.14's
    # SVG exporter cannot parse. No border object, no path.
    plot.getViewBox().border = None
    for name in ("left", "bottom", "right", "top"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(FOREGROUND))
        axis.setTextPen(pg.mkPen(FOREGROUND))
        axis.enableAutoSIPrefix(False)      # "loss (x0.001)" misleads more than it helps
    if title:
        plot.setTitle(title, color=FOREGROUND, size="11pt")


def set_axis_label(plot: pg.PlotItem, side: str, text: str) -> None:
    plot.setLabel(side, text, color=FOREGROUND)


def array_to_qimage(rgb: np.ndarray) -> QImage:
    """An (H, W, 3) uint8 array -> a QImage that owns its pixels (a copy)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def scaled_nearest(image: QImage, width: int, height: int) -> QPixmap:
    """`image` enlarged by the largest whole factor that fits (nearest neighbour: 32x32 pixels stay crisp).

    Images larger than the box are shrunk smoothly instead, keeping the aspect ratio.
    """
    if image.isNull() or width <= 0 or height <= 0:
        return QPixmap()
    factor = min(width // max(1, image.width()), height // max(1, image.height()))
    if factor >= 1:
        return QPixmap.fromImage(image.scaled(image.width() * factor, image.height() * factor,
                                              Qt.AspectRatioMode.IgnoreAspectRatio,
                                              Qt.TransformationMode.FastTransformation))
    return QPixmap.fromImage(image.scaled(width, height, Qt.AspectRatioMode.KeepAspectRatio,
                                          Qt.TransformationMode.SmoothTransformation))


def follow_mouse(scene, plot: pg.PlotItem, readout, text_at) -> None:
    """Show text_at(x, y) for the point under the mouse in `readout` (a QLabel), '' off the plot."""
    def moved(scene_pos) -> None:
        vb = plot.getViewBox()
        if not vb.sceneBoundingRect().contains(scene_pos):
            readout.setText("")
            return
        point = vb.mapSceneToView(scene_pos)
        readout.setText(text_at(point.x(), point.y()))
    scene.sigMouseMoved.connect(moved)


def careful_question(parent: QWidget | None, title: str, text: str) -> QMessageBox:
    """A Yes/No question whose default and Escape are No: for what cannot be taken back by a stray Enter."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text,
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, parent)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    box.setEscapeButton(QMessageBox.StandardButton.No)
    return box
