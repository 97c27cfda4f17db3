"""GridHeatmap: the layer x noise-level accuracy matrix of a probe grid, filling in as cells arrive.

One float32 ImageItem (rows = timesteps, columns = layers in network order) with fixed levels and a
256-entry colour map shared with a ColorBarItem; unfinished cells are NaN, which ImageItem draws
transparent (blank), never a colour. Each finished cell carries its value as text; the best cell is
outlined (or the cell the grid chose on held-out images, set_selected). A new cell costs one setImage of a
tiny array and one text update.

Given the grid's test images and classes (set_certainty), the heatmap says how sure each cell is: its 95%
binomial interval on hover, the chance level marked on the colour bar, a fitted scale never narrower than a
cell's interval, and (set_grey_chance) cells within chance + 2 sigma drawn blank with grey text.

Given the grid's noise schedule (set_noise_axis), the rows can be labelled by log-SNR instead of the family's
own index (noise_rows.py, its box `rows.box`); hover names both.

What is drawn and said over the colours (readout, certainty, stand-ins, the colour bar's marks, each cell's
text, the outline, a path) is heatmap_overlays.py, a mixin of GridHeatmap.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics
from PySide6.QtWidgets import QGraphicsRectItem, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ddae_core.engine.evaluation.certainty import chance_level, fitted_levels
from ddae_core.engine.evaluation.noise_axis import NoiseAxis

from . import export
from .common import BACKGROUND, FOREGROUND, follow_mouse, set_axis_label, style_plot
from .heatmap_overlays import CHANCE, HeatmapOverlays, percent_number
from .noise_rows import NoiseRows

SEQUENTIAL_MAP = "viridis"
DIVERGING_MAP = "CET-D1A"       # blue - white - red, symmetric around its middle
BLANK_CELL = QColor("#f0f0f0")


class GridHeatmap(HeatmapOverlays, QWidget):
    """A probe grid as a heatmap: set_axes, then set_cell as cells arrive."""

    cellClicked = Signal(int, str)           # timestep, layer of a measured cell clicked

    def __init__(self, title: str = "", parent=None):
        super().__init__(parent)
        self._title = title
        self._timesteps: list[int] = []
        self._layers: list[str] = []
        self._row_labels: dict[int, str] = {}
        self.rows = NoiseRows()                       # the rows' labels: own index or log-SNR
        self._values = np.full((0, 0), np.nan)        # float64 master; drawn as float32
        self._texts: dict[tuple[int, int], pg.TextItem] = {}
        # None: 0..1 for accuracies (symmetric around 0 when diverging); "auto": from the data.
        self._levels: tuple[float, float] | str | None = None
        self._diverging = False
        self._baselines: dict[str, float] = {}       # label -> value, marked on the colour bar
        self._marks: dict[str, pg.InfiniteLine] = {}
        self._test_images: int | None = None         # what each cell was measured on (None: not known)
        self._classes: int | None = None
        self._grey_chance = False
        self._selected: tuple[int, str] | None = None  # the cell the grid chose, when not simply the highest
        self._stand_ins: set[tuple[int, str]] = set()  # cells holding a k-NN vote until their head is trained
        self._stand_in_words = "k-NN"                    # what they are, in the tooltip (a preview says its images)
        self.value_name = "accuracy"         # what the cells hold: colour bar label (in %), CSV column

        self.layout_widget = pg.GraphicsLayoutWidget()
        self.layout_widget.setBackground(BACKGROUND)
        self.graphics = self.layout_widget.ci
        self.plot: pg.PlotItem = self.graphics.addPlot(row=0, col=0)
        style_plot(self.plot, title)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.invertY(True)              # the lowest noise level on top, as the paper's tables read
        self.plot.getViewBox().setBackgroundColor(BLANK_CELL)
        set_axis_label(self.plot, "bottom", "layer")
        set_axis_label(self.plot, "left", "noise level")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=SEQUENTIAL_MAP, interactive=False, width=14)
        self.colorbar.setImageItem(self.image)
        self.colorbar.axis.setPen(pg.mkPen(FOREGROUND))
        self.colorbar.axis.setTextPen(pg.mkPen(FOREGROUND))
        # Ticks in percent like the cells' text (values stay fractions 0..1), never "x0.001".
        self.colorbar.axis.setScale(100.0)
        self.colorbar.axis.enableAutoSIPrefix(False)
        self.graphics.addItem(self.colorbar, row=0, col=1)
        self.set_value_name(self.value_name)
        self.rows.box.currentIndexChanged.connect(lambda _: self._set_row_ticks())
        self._outline = QGraphicsRectItem()
        pen = pg.mkPen("#ff2d2d", width=3)
        pen.setCosmetic(True)
        self._outline.setPen(pen)
        self._outline.setZValue(10)
        self._outline.hide()
        self.plot.addItem(self._outline)

        self.status = QLabel("")
        self.status.setStyleSheet("color: #606060;")
        self.status.setWordWrap(True)          # a finished grid's headline can run to two lines
        self.export_button = export.make_export_button(
            self, lambda: self._title or "probe_grid",
            {"png": self.export_png, "svg": self.export_svg, "csv": self.export_csv}, views=[self.layout_widget])
        self.readout = QLabel("")            # the cell under the mouse
        self.readout.setStyleSheet("color: #303030;")
        follow_mouse(self.layout_widget.scene(), self.plot, self.readout, self.readout_at)
        self.layout_widget.scene().sigMouseClicked.connect(self._clicked)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 0)
        bar.addWidget(self.status, 1)
        bar.addWidget(self.readout)
        bar.addWidget(self.rows.box)
        bar.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addWidget(self.layout_widget, 1)

    # Axes and cells.
    def set_axes(self, timesteps: list[int], layers: list[str], row_labels: dict[int, str] | None = None) -> None:
        """Rows = timesteps (as given), columns = layers in network order; keeps the cells that still fit."""
        if ([int(t) for t in timesteps], [str(x) for x in layers]) == (self._timesteps, self._layers) and \
                {int(k): str(v) for k, v in (row_labels or {}).items()} == self._row_labels:
            return                              # live views re-send the same axes with every update
        old = self.cells()
        self._timesteps = [int(t) for t in timesteps]
        self._layers = [str(layer) for layer in layers]
        self._row_labels = {int(k): str(v) for k, v in (row_labels or {}).items()}
        self._values = np.full((len(self._timesteps), len(self._layers)), np.nan)
        for item in self._texts.values():
            self.plot.removeItem(item)
        self._texts.clear()
        self.plot.getAxis("bottom").setTicks([[(c + 0.5, name) for c, name in enumerate(self._layers)]])
        self.rows.set_rows(self._timesteps, self._row_labels)
        self._set_row_ticks()
        for (t, layer), value in old.items():
            if t in self._timesteps and layer in self._layers:
                self._values[self._timesteps.index(t), self._layers.index(layer)] = value
        self.plot.setRange(xRange=(0, max(1, len(self._layers))), yRange=(0, max(1, len(self._timesteps))),
                           padding=0)
        self._refresh(all_texts=True)

    def set_noise_axis(self, axis: NoiseAxis | None) -> None:
        """The grid's noise schedule, so its rows can be labelled by log-SNR; None: index only."""
        if self.rows.set_noise(axis):
            self._set_row_ticks()

    def _set_row_ticks(self) -> None:
        texts = self.rows.texts()
        left = self.plot.getAxis("left")
        left.setTicks([[(r + 0.5, text) for r, text in enumerate(texts)]])
        set_axis_label(self.plot, "left", self.rows.axis_label())
        # pyqtgraph drops tick labels wider than the axis instead of widening it: size it to the text.
        metrics = QFontMetrics(left.style.get("tickFont") or QFont())
        left.setWidth(max([metrics.horizontalAdvance(text) for text in texts] + [24]) + 34)

    def set_selected(self, cell: tuple[int, str] | None) -> None:
        """Outline this cell (the grid's choice on held-out images) instead of the highest; None: the highest."""
        self._selected = (int(cell[0]), str(cell[1])) if cell else None
        self._update_outline()

    def axes(self) -> tuple[list[int], list[str]]:
        return list(self._timesteps), list(self._layers)

    def measured_cell_at(self, x: float, y: float) -> tuple[int, str] | None:
        """(timestep, layer) of the measured cell at plot coordinates (x, y); None outside or on a blank one."""
        col, row = int(np.floor(x)), int(np.floor(y))
        if not (0 <= row < len(self._timesteps) and 0 <= col < len(self._layers)):
            return None
        return (self._timesteps[row], self._layers[col]) if np.isfinite(self._values[row, col]) else None

    def _clicked(self, event) -> None:
        vb = self.plot.getViewBox()
        if event.button() != Qt.MouseButton.LeftButton or not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        point = vb.mapSceneToView(event.scenePos())
        cell = self.measured_cell_at(point.x(), point.y())
        if cell is not None:
            self.cellClicked.emit(*cell)

    def set_cell(self, timestep: int, layer: str, accuracy: float | None) -> None:
        """One cell's value (0..1); None or NaN blanks it. A cell outside the axes extends them."""
        self._put(int(timestep), str(layer), accuracy)
        self._refresh(all_texts=False, changed=[(int(timestep), str(layer))])

    def set_cells(self, cells: Iterable[tuple[int, str, float | None]]) -> None:
        """Several cells at once: (timestep, layer, accuracy) each; drawn once."""
        changed = []
        for timestep, layer, accuracy in cells:
            self._put(int(timestep), str(layer), accuracy)
            changed.append((int(timestep), str(layer)))
        self._refresh(all_texts=False, changed=changed)

    def _put(self, timestep: int, layer: str, value: float | None) -> None:
        if timestep not in self._timesteps or layer not in self._layers:
            # A cell before (or beyond) its grid event: grow the axes rather than lose the value.
            timesteps = sorted(set(self._timesteps) | {timestep})
            layers = self._layers + ([layer] if layer not in self._layers else [])
            self.set_axes(timesteps, layers, self._row_labels)
        v = np.nan if value is None else float(value)
        self._values[self._timesteps.index(timestep), self._layers.index(layer)] = v

    def clear_cells(self) -> None:
        self._values[:] = np.nan
        self._refresh(all_texts=True)

    def cells(self) -> dict[tuple[int, str], float]:
        """Finished cells: (timestep, layer) -> value."""
        rows, cols = np.nonzero(np.isfinite(self._values))
        return {(self._timesteps[r], self._layers[c]): float(self._values[r, c]) for r, c in zip(rows, cols)}

    def values(self) -> np.ndarray:
        """The matrix as drawn (rows timesteps, columns layers; NaN = unfinished), a copy."""
        return self._values.copy()

    def best_cell(self) -> tuple[int, str, float] | None:
        """(timestep, layer, value) of the selected cell (set_selected) or else the highest finished one, or None."""
        values = self._values.copy()
        for t, layer in self.stand_ins():
            values[self._timesteps.index(t), self._layers.index(layer)] = np.nan
        if not np.isfinite(values).any():
            return None
        if self._selected in self.cells():
            t, layer = self._selected
            return t, layer, self.cells()[(t, layer)]
        r, c = np.unravel_index(np.nanargmax(values), values.shape)
        return self._timesteps[r], self._layers[c], float(values[r, c])

    # Colour scale.
    def set_levels(self, lo: float | None = None, hi: float | None = None) -> None:
        """Fix the colour scale to lo..hi; set_levels() (no arguments) follows the data instead.

        Until called, accuracies use 0..1 (diverging: +-max |value|).
        """
        self._levels = "auto" if lo is None or hi is None else (float(lo), float(hi))
        self._refresh(all_texts=True)

    def levels(self) -> tuple[float, float]:
        """The colour scale in use (symmetric around 0 in diverging mode)."""
        return tuple(self.colorbar.levels())

    def set_baselines(self, baselines: dict[str, float | None]) -> None:
        """Reference values (label -> 0..1, e.g. raw pixels, random init) marked on the colour bar.

        A fitted scale (set_levels()) spans them too, so the cells read against them.
        """
        clean = {str(k): float(v) for k, v in baselines.items() if v is not None and np.isfinite(v)}
        if clean == self._baselines:
            return
        self._baselines = clean
        self._sync_marks()
        self.set_value_name(self.value_name)

    def _mark_values(self) -> dict[str, float]:
        """Baselines, and the chance level once the number of classes is known."""
        chance = {CHANCE: chance_level(self._classes)} if self._classes else {}
        return {**self._baselines, **chance}

    def baselines(self) -> dict[str, float]:
        """The baselines marked (the chance level, marked too, is not one of them)."""
        return dict(self._baselines)

    def set_diverging(self, on: bool) -> None:
        """A diverging map symmetric around 0 (for B - A differences); the best cell is not outlined."""
        self._diverging = bool(on)
        self.colorbar.setColorMap(DIVERGING_MAP if on else SEQUENTIAL_MAP)
        self._refresh(all_texts=True)

    def set_value_name(self, name: str) -> None:
        """What the cells hold (colour bar label, CSV column), e.g. 'accuracy difference'."""
        self.value_name = name
        dashes = ", ".join(f"{label} {percent_number(value)}" for label, value in self._baselines.items())
        chance = f"; dotted: chance {percent_number(chance_level(self._classes))}" if self._classes else ""
        self.colorbar.axis.setLabel(f"{name} (%)" + (f"; dashed: {dashes}" if dashes else "") + chance,
                                    color=FOREGROUND)

    def set_title(self, title: str) -> None:
        self._title = title
        self.plot.setTitle(title, color=FOREGROUND, size="11pt")

    def set_status(self, text: str) -> None:
        self.status.setText(text)

    def _current_levels(self) -> tuple[float, float]:
        finite = self._values[np.isfinite(self._values)]
        if self._diverging:
            if isinstance(self._levels, tuple):
                span = max(abs(self._levels[0]), abs(self._levels[1]))
            else:
                span = float(np.abs(finite).max()) if len(finite) else 0.0
            span = span if span > 0 else 0.01
            return -span, span
        if isinstance(self._levels, tuple):
            return self._levels
        if self._levels is None or not len(finite):
            return 0.0, 1.0
        return fitted_levels(finite, self._test_images, self._mark_values().values())

    # Drawing.
    def _refresh(self, all_texts: bool, changed: list[tuple[int, str]] | None = None) -> None:
        levels = self._current_levels()
        old_levels = tuple(self.colorbar.levels())
        if self._values.size:
            drawn = self._values.astype(np.float32)
            for t, layer in self.greyed_cells():
                drawn[self._timesteps.index(t), self._layers.index(layer)] = np.nan
            self.image.setImage(drawn, autoLevels=False, levels=levels)
            self.image.setRect(QRectF(0, 0, len(self._layers), len(self._timesteps)))
        else:
            self.image.clear()
        if levels != old_levels:
            self.colorbar.setLevels(levels)
            all_texts = True            # each text's colour depends on where its value sits on the scale
        if all_texts:
            cells = [(r, c) for r in range(len(self._timesteps)) for c in range(len(self._layers))]
        else:
            cells = [(self._timesteps.index(t), self._layers.index(layer)) for t, layer in changed or []]
        for r, c in cells:
            self._update_text(r, c, levels)
        self._update_outline()
        self._place_marks(levels)

    # Export.
    def export_png(self, path: str | Path) -> Path:
        return export.export_png(self.graphics, path)

    def export_svg(self, path: str | Path) -> Path:
        return export.export_svg(self.graphics, path)

    def export_csv(self, path: str | Path) -> Path:
        """Finished cells, row by row: timestep,layer,<value name>."""
        rows = [(t, layer, float(self._values[r, c]))
                for r, t in enumerate(self._timesteps) for c, layer in enumerate(self._layers)
                if np.isfinite(self._values[r, c])]
        return export.write_csv(path, ("timestep", "layer", self.value_name.replace(" ", "_")), rows)

