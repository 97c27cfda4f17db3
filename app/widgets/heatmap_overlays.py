"""What GridHeatmap draws and says over its cells' colours, a mixin of it.

The readout of the cell under the mouse (with its 95% binomial interval once set_certainty says how many test
images each cell was measured on), cells within chance drawn grey, stand-in cells (a k-NN vote until the cell's
head is trained) in italics with a "k", the baselines' and chance's marks on the colour bar, each cell's number,
the best cell's outline and a path through cells (set_path).

The state is GridHeatmap's own (its axes, values, plot, colour bar, outline): it is named below so a reader sees
what the mixin reads; GridHeatmap sets all of it in its __init__ and provides cells, best_cell, levels,
set_value_name, _mark_values and _refresh.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QGraphicsRectItem

from ddae_core.engine.evaluation.certainty import wilson_interval, within_chance
from ddae_core.rundir.figures import percent, points

from ..colors import text_color_on
from .common import FOREGROUND
from .noise_rows import NoiseRows

GREYED_TEXT = QColor("#9a9a9a")
CHANCE = "chance"               # the chance level's mark on the colour bar
_BAR_PIXELS = 256               # the colour bar's own y range for its colour map


class HeatmapOverlays:
    """GridHeatmap's overlays: readout, certainty, stand-ins, colour-bar marks, cell texts, outline, path."""

    _timesteps: list[int]
    _layers: list[str]
    _values: np.ndarray
    _texts: dict[tuple[int, int], pg.TextItem]
    _diverging: bool
    _marks: dict[str, pg.InfiniteLine]
    _test_images: int | None
    _classes: int | None
    _grey_chance: bool
    _stand_ins: set[tuple[int, str]]
    _stand_in_words: str
    _outline: QGraphicsRectItem
    rows: NoiseRows
    plot: pg.PlotItem
    colorbar: pg.ColorBarItem
    value_name: str

    # What the cell under the mouse is, and how sure the cells are.
    def readout_at(self, x: float, y: float) -> str:
        """The cell at plot coordinates (x, y) in words: 'out_6 at t=11: 72.4%' ('' outside the grid)."""
        col, row = int(np.floor(x)), int(np.floor(y))
        if not (0 <= row < len(self._timesteps) and 0 <= col < len(self._layers)):
            return ""
        t = self._timesteps[row]
        where = f"{self._layers[col]} at {self.rows.where(t)}"
        value = self._values[row, col]
        if not np.isfinite(value):
            return f"{where}: not measured yet"
        if (t, self._layers[col]) in self._stand_ins:
            where += f" ({self._stand_in_words}, until its head is trained)"
        if self._diverging:
            return f"{where}: {points(value)} points"
        text = f"{where}: {percent(value)}"
        if self._test_images:
            lo, hi = wilson_interval(value, self._test_images)
            text += f" (95% interval {percent_number(lo)}-{percent(hi)} on {self._test_images:,} test images)"
            if self._is_chance(value):
                text += ", within chance + 2 sigma"
        return text

    def _is_chance(self, value: float) -> bool:
        return bool(self._test_images and self._classes) and not self._diverging and \
            within_chance(value, self._classes or 0, self._test_images or 0)

    def set_certainty(self, test_images: int | None, classes: int | None) -> None:
        """The number of test images each cell was measured on and of classes (None: unknown, nothing shown)."""
        test_images, classes = (int(test_images) if test_images else None), (int(classes) if classes else None)
        if (test_images, classes) == (self._test_images, self._classes):
            return
        self._test_images, self._classes = test_images, classes
        self._sync_marks()
        self.set_value_name(self.value_name)

    def set_grey_chance(self, on: bool) -> None:
        """Draw cells within chance + 2 sigma blank, their text grey: what guessing could have scored."""
        self._grey_chance = bool(on)
        self._refresh(all_texts=True)

    def greyed_cells(self) -> set[tuple[int, str]]:
        """The cells drawn as within chance (empty unless set_grey_chance and set_certainty)."""
        if not self._grey_chance:
            return set()
        return {cell for cell, value in self.cells().items() if self._is_chance(value)}

    # Stand-in cells (a k-NN vote until the cell's head is trained).
    def set_stand_ins(self, cells: Iterable[tuple[int, str]], words: str = "k-NN") -> None:
        """Cells whose value stands in for one still to come (a k-NN vote until the cell's head is trained):
        written in italics with a trailing "k", never outlined as the best; `words` name them in the tooltip."""
        self._stand_ins = {(int(t), str(layer)) for t, layer in cells}
        self._stand_in_words = words
        self._refresh(all_texts=True)

    def stand_ins(self) -> set[tuple[int, str]]:
        return set(self._stand_ins) & set(self.cells())

    # The reference marks on the colour bar.
    def _sync_marks(self) -> None:
        clean = self._mark_values()
        for label in [k for k in self._marks if k not in clean]:
            self.colorbar.removeItem(self._marks.pop(label))
        for label in clean:
            if label not in self._marks:
                # The bar is too narrow for words on it: the axis label names the dashes.
                style = Qt.PenStyle.DotLine if label == CHANCE else Qt.PenStyle.DashLine
                pen = pg.mkPen(FOREGROUND, width=2, style=style)
                line = pg.InfiniteLine(angle=0, movable=False, pen=pen)
                line.setZValue(20)
                self.colorbar.addItem(line)
                self._marks[label] = line
        self._refresh(all_texts=True)

    def baseline_mark(self, label: str) -> float | None:
        """Where a baseline's mark sits on the colour bar, as a value (None when hidden, off the scale)."""
        line = self._marks.get(label)
        if line is None or not line.isVisible():
            return None
        lo, hi = self.levels()
        return lo + line.value() / _BAR_PIXELS * (hi - lo)

    def _place_marks(self, levels: tuple[float, float]) -> None:
        # The colour bar draws its 256-entry map over 0..256 in its own coordinates, lo at the bottom.
        lo, hi = levels
        values = self._mark_values()
        for label, line in self._marks.items():
            value = values[label]
            inside = not self._diverging and hi > lo and lo <= value <= hi
            line.setVisible(inside)
            if inside:
                line.setValue((value - lo) / (hi - lo) * _BAR_PIXELS)

    # Each cell's text, the best cell's outline, a path through cells.
    def _update_text(self, r: int, c: int, levels: tuple[float, float]) -> None:
        value = float(self._values[r, c])
        item = self._texts.get((r, c))
        if not np.isfinite(value):
            if item is not None:
                item.hide()
            return
        if item is None:
            item = pg.TextItem(anchor=(0.5, 0.5))
            font = QFont()
            font.setPointSizeF(8.5)
            item.setFont(font)
            item.setPos(c + 0.5, r + 0.5)
            self.plot.addItem(item)
            self._texts[(r, c)] = item
        stand_in = (self._timesteps[r], self._layers[c]) in self._stand_ins
        item.setText((points(value) if self._diverging else percent_number(value)) + (" k" if stand_in else ""))
        font = item.textItem.font()
        if font.italic() != stand_in:
            font.setItalic(stand_in)
            item.setFont(font)
        lo, hi = levels
        fraction = 0.5 if hi <= lo else min(1.0, max(0.0, (value - lo) / (hi - lo)))
        if self._grey_chance and self._is_chance(value):
            item.setColor(GREYED_TEXT)
        else:
            item.setColor(text_color_on(self.colorbar.colorMap().map(fraction, mode="qcolor")))
        item.show()

    def _update_outline(self) -> None:
        best = None if self._diverging else self.best_cell()
        if best is None:
            self._outline.hide()
            return
        r, c = self._timesteps.index(best[0]), self._layers.index(best[1])
        self._outline.setRect(QRectF(c, r, 1, 1))
        self._outline.show()

    def set_path(self, cells: list[tuple[int, str]], current: int | None = None) -> None:
        """A line through these cells' centres, in order (e.g. the best cell step by step), cell `current` ringed.

        Cells off the axes are left out; an empty list hides the path.
        """
        if not hasattr(self, "_path_line"):
            pen = pg.mkPen("#ff2d2d", width=2, style=Qt.PenStyle.DashLine)
            self._path_line = pg.PlotDataItem(pen=pen, symbol="o", symbolSize=7, symbolBrush="#ff2d2d",
                                              symbolPen=pg.mkPen("w"))
            self._path_now = pg.ScatterPlotItem(size=16, brush=None, pen=pg.mkPen("#ff2d2d", width=3))
            for item in (self._path_line, self._path_now):
                item.setZValue(15)
                self.plot.addItem(item)
        self._path = [(int(t), str(layer)) for t, layer in cells if t in self._timesteps and layer in self._layers]
        xs = [self._layers.index(layer) + 0.5 for _, layer in self._path]
        ys = [self._timesteps.index(t) + 0.5 for t, _ in self._path]
        self._path_line.setData(xs, ys)
        now = current is not None and 0 <= current < len(self._path)
        self._path_now.setData([xs[current]] if now else [], [ys[current]] if now else [])

    def path(self) -> list[tuple[int, str]]:
        """The cells the path goes through (set_path), in order."""
        return list(getattr(self, "_path", []))

    def text_of(self, timestep: int, layer: str) -> str:
        """The text written in a cell ('' when blank): for tests and screen readers."""
        item = self._texts.get((self._timesteps.index(timestep), self._layers.index(layer)))
        return item.toPlainText() if item is not None and item.isVisible() else ""

    def outlined_cell(self) -> tuple[int, str] | None:
        if not self._outline.isVisible():
            return None
        rect = self._outline.rect()
        return self._timesteps[int(rect.y())], self._layers[int(rect.x())]


def percent_number(fraction: float) -> str:
    """A fraction in percent without its sign, as the one formatter rounds it (the axis says %)."""
    return percent(fraction).rstrip("%")
