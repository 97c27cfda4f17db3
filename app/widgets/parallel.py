"""Parallel coordinates: one polyline per run across chosen settings and metrics, coloured by a column,
with a brush per axis (drag a range along it) that says which runs to keep.

Drawn as at most COLOR_BINS curves (one per colour, each a single PlotCurveItem whose polylines are cut
apart by its `connect` array) plus one for the highlighted runs, so 10,000 runs are a few numpy passes
and a handful of items, never an item per run. The geometry (`layout`) is Qt-free numpy.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QVBoxLayout, QWidget

from .common import BACKGROUND, FOREGROUND, style_plot

COLOR_BINS = 8
AXIS_HALF_WIDTH = 0.12          # how far from an axis (in axis units) a drag still brushes it
HIGHLIGHT = "#d32f2f"
NO_COLOUR = "#5c6bc0"

Value = float | int | str | None


@dataclass(frozen=True)
class Axis:
    """One vertical axis: its column, and how its values map to 0..1 (numbers linearly, texts by rank)."""

    column: str
    low: float = 0.0
    high: float = 1.0
    categories: tuple[str, ...] = ()      # set for a text column: its values in order

    def position(self, values: Sequence[Value]) -> np.ndarray:
        """Each value at 0..1 along the axis; NaN where missing."""
        if self.categories:
            span = max(1, len(self.categories) - 1)
            rank = {c: i / span for i, c in enumerate(self.categories)}
            # map() keeps 10,000 values at C speed; a None is missing even where "None" is a category.
            where = np.fromiter(map(rank.get, map(str, values), repeat(math.nan)), dtype=float, count=len(values))
            where[np.fromiter(map(operator.is_, values, repeat(None)), dtype=bool, count=len(values))] = math.nan
            return where
        return self.place(_numbers(values))

    def place(self, numbers: np.ndarray) -> np.ndarray:
        """Numbers (NaN: missing) at 0..1 along a numeric axis."""
        if self.high == self.low:
            return np.where(np.isnan(numbers), math.nan, 0.5)
        return (numbers - self.low) / (self.high - self.low)

    def value_at(self, position: float) -> float:
        return self.low + position * (self.high - self.low)

    def label_at(self, position: float) -> str:
        if self.categories:
            span = max(1, len(self.categories) - 1)
            return self.categories[min(len(self.categories) - 1, max(0, round(position * span)))]
        return f"{self.value_at(position):.4g}"


def _numbers(values: Sequence[Value]) -> np.ndarray:
    """Numbers as floats, NaN where missing (numpy's own conversion: None becomes NaN)."""
    return np.asarray(values, dtype=float)


def placed(column: str, values: Sequence[Value]) -> tuple[Axis, np.ndarray]:
    """The axis for `column` and each value's position 0..1 along it (NaN: missing), the values converted
    once. A text among the values makes a categorical axis (even "64": the database compares it as text)."""
    if str in set(map(type, values)):       # C-speed over 10,000 values, unlike a generator
        axis = Axis(column, categories=tuple(sorted({str(v) for v in values if v is not None})))
        return axis, axis.position(values)
    numbers = _numbers(values)
    if np.isnan(numbers).all():
        axis = Axis(column, 0.0, 1.0)
    else:
        axis = Axis(column, float(np.nanmin(numbers)), float(np.nanmax(numbers)))
    return axis, axis.place(numbers)


def layout(columns: Sequence[str], values: Sequence[Sequence[Value]]) -> tuple[list[Axis], np.ndarray]:
    """The axes and an (runs, axes) array of positions 0..1 (NaN: missing) for values[axis][run]."""
    n_runs = len(values[0]) if values else 0
    positions = np.empty((n_runs, len(columns)), dtype=float)
    axes = []
    for i, (column, column_values) in enumerate(zip(columns, values)):
        axis, positions[:, i] = placed(column, column_values)
        axes.append(axis)
    return axes, positions


def colour_bins(values: Sequence[Value] | None, n_runs: int) -> np.ndarray:
    """Each run's colour bin 0..COLOR_BINS-1: numbers by equal-width bins, texts by rank; -1 where missing."""
    if values is None:
        return np.zeros(n_runs, dtype=int)
    _, position = placed("", values)
    bins = np.floor(np.nan_to_num(position, nan=-1.0) * (COLOR_BINS - 1) + 0.5).astype(int)
    return np.where(np.isnan(position), -1, np.clip(bins, 0, COLOR_BINS - 1))


def polyline_arrays(positions: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y and connect arrays drawing runs `rows` as separate polylines; a missing value breaks a line."""
    n_axes = positions.shape[1]
    y = positions[rows].ravel()
    x = np.tile(np.arange(n_axes, dtype=float), len(rows))
    connect = np.ones(len(y), dtype=bool)
    if len(y):
        connect[n_axes - 1::n_axes] = False                  # no segment from one run's last axis to the next run
        missing = np.isnan(y)
        connect &= ~missing & ~np.roll(missing, -1)
    return x, np.nan_to_num(y, nan=0.0), connect


def _bin_colour(b: int, coloured: bool, n_runs: int) -> QColor:
    """Viridis across the bins when a colour column is chosen; grey for runs lacking it. Fainter the more
    lines there are, so dense bundles read as density."""
    if b == COLOR_BINS:
        colour = QColor("#9e9e9e")
    elif coloured:
        colour = pg.colormap.get("viridis").map(b / (COLOR_BINS - 1), mode="qcolor")
    else:
        colour = QColor(NO_COLOUR)
    colour.setAlpha(230 if n_runs <= 100 else 120 if n_runs <= 2000 else 50)
    return colour


class _BrushBox(pg.ViewBox):
    """Left-drag along an axis brushes a range of it; a click on an axis clears its brush."""

    def __init__(self, owner: ParallelCoordinates):
        super().__init__(enableMenu=False)
        self.owner = owner
        self.setMouseEnabled(x=False, y=False)

    def _axis_at(self, x: float) -> int | None:
        axis = round(x)
        if abs(x - axis) <= AXIS_HALF_WIDTH * 2 and 0 <= axis < len(self.owner.axes):
            return axis
        return None

    def mouseDragEvent(self, ev, axis=None) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        start, now = self.mapSceneToView(ev.buttonDownScenePos()), self.mapSceneToView(ev.scenePos())
        index = self._axis_at(start.x())
        if index is None:
            return
        low, high = sorted((min(1.0, max(0.0, start.y())), min(1.0, max(0.0, now.y()))))
        self.owner.set_brush_position(index, low, high, final=ev.isFinish())

    def mouseClickEvent(self, ev) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            index = self._axis_at(self.mapSceneToView(ev.scenePos()).x())
            if index is not None:
                ev.accept()
                self.owner.clear_brush(self.owner.axes[index].column)
                return
        ev.ignore()


class ParallelCoordinates(QWidget):
    """Polylines of runs across axes; brushing emits the ranges kept per column."""

    brushed = Signal(dict)      # column -> (low, high) in data units, or a tuple of categories for a text axis

    def __init__(self, parent=None):
        super().__init__(parent)
        self.axes: list[Axis] = []
        self.run_ids: list[str] = []
        self.positions = np.empty((0, 0))
        self._brush_positions: dict[str, tuple[float, float]] = {}
        self._brush_items: dict[str, QGraphicsRectItem] = {}
        self._box = _BrushBox(self)
        self.plot = pg.PlotWidget(background=BACKGROUND, viewBox=self._box)
        item = self.plot.getPlotItem()
        style_plot(item)
        item.hideAxis("left")
        self._curves = [pg.PlotCurveItem(pen=pg.mkPen(NO_COLOUR, width=1)) for _ in range(COLOR_BINS + 1)]
        self._highlight = pg.PlotCurveItem(pen=pg.mkPen(HIGHLIGHT, width=2.5))
        for curve in (*self._curves, self._highlight):
            item.addItem(curve)
        self._axis_lines: list[pg.InfiniteLine] = []
        self._axis_texts: list[pg.TextItem] = []
        self._highlighted: set[str] = set()
        layout_ = QVBoxLayout(self)
        layout_.setContentsMargins(0, 0, 0, 0)
        layout_.addWidget(self.plot)

    # Data.
    def set_data(self, run_ids: Sequence[str], columns: Sequence[str], values: Sequence[Sequence[Value]],
                 color_values: Sequence[Value] | None = None, labels: Sequence[str] | None = None) -> None:
        """One line per run; values[axis][run]; lines coloured by color_values (one per run) when given."""
        self.run_ids = list(run_ids)
        self.axes, self.positions = layout(columns, values)
        bins = colour_bins(color_values, len(self.run_ids))
        item = self.plot.getPlotItem()
        for b, curve in enumerate(self._curves):
            x, y, connect = polyline_arrays(self.positions, np.flatnonzero(bins == (b if b < COLOR_BINS else -1)))
            curve.setData(x, y, connect=connect)
            curve.setPen(pg.mkPen(_bin_colour(b, color_values is not None, len(self.run_ids)), width=1))
        names = list(labels) if labels else [a.column for a in self.axes]
        item.getAxis("bottom").setTicks([[(i, name) for i, name in enumerate(names)]])
        self._draw_axes()
        self.plot.setRange(xRange=(-0.3, max(0.3, len(self.axes) - 0.7)), yRange=(-0.08, 1.08), padding=0)
        kept = {a.column for a in self.axes}
        for column in [c for c in self._brush_positions if c not in kept]:
            self.clear_brush(column, emit=False)
        for column, (low, high) in list(self._brush_positions.items()):
            self._draw_brush(column, low, high)
        self.highlight(self._highlighted)

    def _draw_axes(self) -> None:
        """An axis line and its two end labels per axis; the items are made once per axis and relabelled."""
        item = self.plot.getPlotItem()
        while len(self._axis_lines) > len(self.axes):
            item.removeItem(self._axis_lines.pop())
            for _ in range(2):
                item.removeItem(self._axis_texts.pop())
        while len(self._axis_lines) < len(self.axes):
            i = len(self._axis_lines)
            line = pg.InfiniteLine(pos=i, angle=90, pen=pg.mkPen(FOREGROUND, width=1), movable=False)
            item.addItem(line)
            self._axis_lines.append(line)
            for position, anchor in ((0.0, (0.5, 0)), (1.0, (0.5, 1))):
                text = pg.TextItem("", color=FOREGROUND, anchor=anchor)
                text.setPos(i, position)
                item.addItem(text)
                self._axis_texts.append(text)
        for i, axis in enumerate(self.axes):
            for j, position in enumerate((0.0, 1.0)):
                text = self._axis_texts[2 * i + j]
                label = axis.label_at(position)
                if text.textItem.toPlainText() != label:
                    text.setText(label)

    def highlight(self, run_ids) -> None:
        """Draw these runs (the table's selection) on top, in red."""
        self._highlighted = set(run_ids)
        chosen = map(self._highlighted.__contains__, self.run_ids)
        rows = np.flatnonzero(np.fromiter(chosen, dtype=bool, count=len(self.run_ids)))
        x, y, connect = polyline_arrays(self.positions, rows) if self.positions.size else ([], [], "all")
        self._highlight.setData(x, y, connect=connect)

    # Brushing.
    def brushes(self) -> dict:
        """column -> (low, high) in data units, or the tuple of categories kept on a text axis."""
        found: dict = {}
        for axis in self.axes:
            if axis.column not in self._brush_positions:
                continue
            low, high = self._brush_positions[axis.column]
            if axis.categories:
                span = max(1, len(axis.categories) - 1)
                found[axis.column] = tuple(c for i, c in enumerate(axis.categories) if low <= i / span <= high)
            else:
                found[axis.column] = (axis.value_at(low), axis.value_at(high))
        return found

    def brush_positions(self) -> dict[str, tuple[float, float]]:
        return dict(self._brush_positions)

    def set_brush_position(self, index: int, low: float, high: float, final: bool = True) -> None:
        """Brush axis `index` from `low` to `high` (0..1 along it); emits `brushed` when final."""
        column = self.axes[index].column
        self._brush_positions[column] = (low, high)
        self._draw_brush(column, low, high)
        if final:
            self.brushed.emit(self.brushes())

    def set_brush(self, column: str, low: float, high: float) -> None:
        """Brush `column` from `low` to `high` in data units (a saved view, or a test)."""
        index = [a.column for a in self.axes].index(column)
        axis = self.axes[index]
        span = (axis.high - axis.low) or 1.0
        self.set_brush_position(index, (low - axis.low) / span, (high - axis.low) / span)

    def clear_brush(self, column: str, emit: bool = True) -> None:
        self._brush_positions.pop(column, None)
        rect = self._brush_items.pop(column, None)
        if rect is not None:
            self.plot.getPlotItem().removeItem(rect)
        if emit:
            self.brushed.emit(self.brushes())

    def _draw_brush(self, column: str, low: float, high: float) -> None:
        index = [a.column for a in self.axes].index(column)
        rect = self._brush_items.get(column)
        if rect is None:
            rect = QGraphicsRectItem()
            pen = QPen(QColor(HIGHLIGHT))
            pen.setCosmetic(True)           # one pixel wide at any zoom, not one axis unit
            rect.setPen(pen)
            rect.setBrush(QBrush(QColor(211, 47, 47, 40)))
            self.plot.getPlotItem().addItem(rect)
            self._brush_items[column] = rect
        rect.setRect(QRectF(index - AXIS_HALF_WIDTH, low, 2 * AXIS_HALF_WIDTH, max(high - low, 1e-3)))

    def brushed_ids(self) -> list[str]:
        """The runs whose every brushed value lies in its brush."""
        keep = np.ones(len(self.run_ids), dtype=bool)
        for i, axis in enumerate(self.axes):
            if axis.column in self._brush_positions:
                low, high = self._brush_positions[axis.column]
                column = self.positions[:, i]
                keep &= (column >= low - 1e-9) & (column <= high + 1e-9)
        return [r for r, k in zip(self.run_ids, keep) if k]
