"""CurvePlot: live scalar curves with full data kept, peak-preserving display decimation and smoothing.

Every series keeps all its points in growing numpy buffers; pyqtgraph decimates only what is drawn
(peak downsampling, clipped to the view, redone on zoom), so no point is ever silently dropped and
a 1,000,000-point redraw costs a few numpy passes. Smoothing is TensorBoard's debiased EMA, drawn
over the faint raw curve.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSignalBlocker, Qt, QTimer
from PySide6.QtGui import QColor, QStandardItemModel
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QSlider, QVBoxLayout, QWidget

from ..colors import color_for, faded
from . import export
from .common import FOREGROUND, GRID_ALPHA, follow_mouse, plot_widget, set_axis_label
from .elided import ElidedLabel
from .flow import FlowLayout
from .smoothing import EmaState, ema

X_MODES = ("step", "epoch", "time")
X_LABELS = {"step": "step", "epoch": "epoch", "time": "wall time since first point (s)"}
REFRESH_MS = 40         # appends are drawn at most 25 times a second
MAX_SMOOTHING = 0.999
WIDE_PEN_MAX = 50_000


class _Series:
    """One curve's full data in amortised buffers, and its two plot items (main and faint raw)."""

    def __init__(self, name: str, label: str, color: QColor):
        self.name, self.label, self.color = name, label, color
        self.n = 0
        self.wide = True            # a wider pen reads better, but costs too much paint on huge curves
        self.steps = np.empty(0)
        self.values = np.empty(0)
        self.times = np.empty(0)
        self.smoothed: np.ndarray | None = None     # same length as values while smoothing is on
        self.ema_state = EmaState()
        self.item: pg.PlotDataItem | None = None
        self.raw_item: pg.PlotDataItem | None = None

    def replace(self, steps: np.ndarray, values: np.ndarray, times: np.ndarray) -> None:
        self.steps, self.values, self.times, self.n = steps, values, times, len(steps)

    def extend(self, steps: np.ndarray, values: np.ndarray, times: np.ndarray) -> None:
        """Append in place, doubling capacity when full (no full copy per append)."""
        need = self.n + len(steps)
        for attr in ("steps", "values", "times", "smoothed"):
            buffer = getattr(self, attr)
            if buffer is not None and need > len(buffer):
                grown = np.empty(max(need, 2 * len(buffer), 1024))
                grown[:self.n] = buffer[:self.n]
                setattr(self, attr, grown)
        self.steps[self.n:need] = steps
        self.values[self.n:need] = values
        self.times[self.n:need] = times
        self.n = need

    def view(self, attr: str) -> np.ndarray:
        return getattr(self, attr)[:self.n]


def _as_float(data, n: int | None = None) -> np.ndarray:
    """Any sequence (list, numpy, array.array) -> a float64 numpy copy owned by the plot."""
    if data is None:
        return np.full(n or 0, np.nan)
    return np.array(data, dtype=np.float64, copy=True).reshape(-1)


class CurvePlot(QWidget):
    """A pyqtgraph plot of named series with a toolbar: smoothing, log axes, x mode and export."""

    def __init__(self, title: str = "", y_label: str = "", parent=None):
        super().__init__(parent)
        self._title = title
        self._series: dict[str, _Series] = {}
        self._smoothing = 0.0
        self._x_mode = "step"
        self._steps_per_epoch: float | None = None
        self._series_spe: dict[str, float] = {}
        self._fixed_x_label: str | None = None
        self._dirty: set[str] = set()
        self._timer = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._timer.timeout.connect(self._refresh)

        self.plot_widget = plot_widget(title)
        self.plot: pg.PlotItem = self.plot_widget.getPlotItem()
        self.plot.showGrid(x=True, y=True, alpha=GRID_ALPHA)
        self.plot.setClipToView(True)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.legend = self.plot.addLegend(offset=(-10, 10), labelTextColor=FOREGROUND, labelTextSize="9pt",
                                          brush=pg.mkBrush(255, 255, 255, 210), pen=pg.mkPen("#c0c0c0"))
        set_axis_label(self.plot, "left", y_label)
        set_axis_label(self.plot, "bottom", X_LABELS["step"])

        self._build_toolbar()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(self._toolbar)
        layout.addWidget(self.plot_widget, 1)
        # What an empty plot would show as bare axes, in words (set_empty_text); hidden once a series has points.
        self.empty_label = QLabel()
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setStyleSheet("color: #606060; font-size: 11pt; padding: 24px;")
        self.empty_label.hide()
        layout.addWidget(self.empty_label, 1)

    def _build_toolbar(self) -> None:
        # A flow, not a row: a narrow plot wraps its controls rather than widening the window.
        bar = self._toolbar = FlowLayout()
        bar.setContentsMargins(4, 2, 4, 0)
        self.smoothing_slider = QSlider(Qt.Orientation.Horizontal)
        self.smoothing_slider.setRange(0, int(MAX_SMOOTHING * 1000))
        self.smoothing_slider.setFixedWidth(120)
        self.smoothing_slider.setToolTip("Exponential moving average weight (TensorBoard's, debiased); "
                                         "the raw curve stays visible behind it")
        self.smoothing_slider.valueChanged.connect(lambda v: self.set_smoothing(v / 1000.0))
        self.smoothing_label = QLabel("0.00")
        self.smoothing_label.setMinimumWidth(34)
        self.log_y_box = QCheckBox("Log y")
        self.log_y_box.toggled.connect(self.set_log_y)
        self.log_x_box = QCheckBox("Log x")
        self.log_x_box.toggled.connect(self.set_log_x)
        self.x_label = QLabel("x:")
        self.x_combo = QComboBox()
        for mode in X_MODES:
            self.x_combo.addItem({"time": "wall time"}.get(mode, mode), mode)
        self.x_combo.currentIndexChanged.connect(lambda i: self.set_x_mode(self.x_combo.itemData(i)))
        self._enable_epoch_mode(False)
        self.export_button = export.make_export_button(
            self, lambda: self._title or "curves",
            {"png": self.export_png, "svg": self.export_svg, "csv": self.export_csv}, views=[self.plot_widget])
        self.readout = ElidedLabel("")       # the points nearest the mouse, on the rest of the line
        self.readout.setStyleSheet("color: #303030;")
        follow_mouse(self.plot_widget.scene(), self.plot, self.readout, lambda x, _y: self.readout_at(x))
        for w in (QLabel("Smoothing"), self.smoothing_slider, self.smoothing_label, self.log_y_box,
                  self.log_x_box, self.x_label, self.x_combo):
            bar.addWidget(w)
        bar.addWidget(self.export_button)
        bar.addFiller(self.readout)

    def _enable_epoch_mode(self, enabled: bool) -> None:
        model = self.x_combo.model()
        if isinstance(model, QStandardItemModel):
            item = model.item(X_MODES.index("epoch"))
            item.setEnabled(enabled)
            item.setToolTip("" if enabled else "Needs the number of steps per epoch")

    # Data.
    def set_series(self, name: str, steps, values, times=None, color=None, label=None) -> None:
        """Replace the series' full data (kept in memory; only the display is decimated)."""
        steps_a = _as_float(steps)
        values_a = _as_float(values)
        if len(values_a) != len(steps_a):
            raise ValueError(f"Series {name!r} has {len(steps_a)} steps but {len(values_a)} values.")
        times_a = _as_float(times, len(steps_a))
        series = self._series.get(name)
        if series is None:
            series = self._add_series(name, label or name, QColor(color) if color is not None else color_for(name))
        else:
            if color is not None:
                series.color = QColor(color)
                self._style(series)
            if label is not None and label != series.label:
                series.label = label
                self._relabel(series)
        series.replace(steps_a, values_a, times_a)
        self._resmooth(series)
        self._dirty.discard(name)
        self._draw(series)
        self._update_empty()
        self._settle()

    def append(self, name: str, steps, values, times=None) -> None:
        """Add points after the series' last step; drawn on the next refresh tick (<= 25 Hz)."""
        series = self._series.get(name)
        steps_a, values_a = _as_float(steps), _as_float(values)
        if series is None or series.n == 0:
            self.set_series(name, steps_a, values_a, times)
            return
        if len(steps_a) == 0:
            return
        times_a = _as_float(times, len(steps_a))
        if steps_a[0] <= series.steps[series.n - 1]:
            # A replayed or resumed stretch: merge by step, the newer point winning, then redraw whole.
            self._merge(series, steps_a, values_a, times_a)
        else:
            series.extend(steps_a, values_a, times_a)
            if self._smoothing > 0 and series.smoothed is not None:
                part, series.ema_state = ema(values_a, self._smoothing, series.ema_state)
                series.smoothed[series.n - len(part):series.n] = part
        self._dirty.add(name)
        if not self._timer.isActive():
            self._timer.start()

    def _merge(self, series: _Series, steps, values, times) -> None:
        all_steps = np.concatenate([series.view("steps"), steps])
        all_values = np.concatenate([series.view("values"), values])
        all_times = np.concatenate([series.view("times"), times])
        # Last occurrence of each step wins: unique on the reversed arrays keeps the newest.
        _, rev_idx = np.unique(all_steps[::-1], return_index=True)
        keep = len(all_steps) - 1 - rev_idx
        series.replace(all_steps[keep], all_values[keep], all_times[keep])
        self._resmooth(series)

    def remove_series(self, name: str) -> None:
        series = self._series.pop(name, None)
        if series is None:
            return
        self._dirty.discard(name)
        self._series_spe.pop(name, None)
        self._update_empty()
        for item in (series.item, series.raw_item):
            self.legend.removeItem(item)
            self.plot.removeItem(item)
        self._update_epoch_mode()

    def clear_series(self) -> None:
        for name in list(self._series):
            self.remove_series(name)

    def set_empty_text(self, text: str) -> None:
        """Shown instead of the axes while no series has a point ('' shows the empty axes)."""
        self.empty_label.setText(text)
        self._update_empty()

    def is_empty(self) -> bool:
        return not any(s.n for s in self._series.values())

    def _update_empty(self) -> None:
        empty = bool(self.empty_label.text()) and self.is_empty()
        self.empty_label.setVisible(empty)
        self.plot_widget.setVisible(not empty)

    def series_names(self) -> list[str]:
        return list(self._series)

    def series_label(self, name: str) -> str:
        return self._series[name].label

    def series_data(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps, values, times) of a series: the full data, read-only views."""
        s = self._series[name]
        views = (s.view("steps"), s.view("values"), s.view("times"))
        for v in views:
            v.flags.writeable = False
        return views

    def smoothed_values(self, name: str) -> np.ndarray:
        """The smoothed curve as drawn (the raw values when smoothing is off)."""
        s = self._series[name]
        return (s.smoothed[:s.n] if s.smoothed is not None else s.view("values")).copy()

    # Display options.
    def set_smoothing(self, weight: float) -> None:
        """EMA weight 0 (off) .. 0.999, debiased as TensorBoard does; the raw curve stays faintly behind."""
        weight = float(min(MAX_SMOOTHING, max(0.0, weight)))
        with QSignalBlocker(self.smoothing_slider):
            self.smoothing_slider.setValue(round(weight * 1000))
        self.smoothing_label.setText(f"{weight:.2f}" if weight < 0.99 else f"{weight:.3f}")
        if weight == self._smoothing:
            return
        self._smoothing = weight
        for series in self._series.values():
            self._resmooth(series)
            self._style(series)
        self._redraw_all()

    def smoothing(self) -> float:
        return self._smoothing

    def set_log_y(self, on: bool) -> None:
        with QSignalBlocker(self.log_y_box):
            self.log_y_box.setChecked(bool(on))
        self.plot.setLogMode(x=self.log_x_box.isChecked(), y=bool(on))

    def set_log_x(self, on: bool) -> None:
        with QSignalBlocker(self.log_x_box):
            self.log_x_box.setChecked(bool(on))
        self.plot.setLogMode(x=bool(on), y=self.log_y_box.isChecked())

    def set_steps_per_epoch(self, n: float | None, name: str | None = None) -> None:
        """Steps in one epoch, for x = epoch; `name` sets it for one series (runs differ in batch size).

        None or <= 0 removes it; epoch mode is offered only while every series has a value.
        """
        value = float(n) if n and n > 0 else None
        if name is None:
            self._steps_per_epoch = value
        elif value is None:
            self._series_spe.pop(name, None)
        else:
            self._series_spe[name] = value
        self._update_epoch_mode()

    def _spe(self, name: str) -> float | None:
        return self._series_spe.get(name, self._steps_per_epoch)

    def _epoch_available(self) -> bool:
        return (self._steps_per_epoch is not None or bool(self._series_spe)) and \
            all(self._spe(name) for name in self._series)

    def _update_epoch_mode(self) -> None:
        available = self._epoch_available()
        self._enable_epoch_mode(available)
        if self._x_mode == "epoch" and not available:
            self.set_x_mode("step")
        elif self._x_mode == "epoch":
            self._redraw_all()

    def set_x_mode(self, mode: str) -> None:
        """x = 'step', 'epoch' (step / steps per epoch) or 'time' (seconds since the series' first point)."""
        if mode not in X_MODES:
            raise ValueError(f"x mode must be one of {', '.join(X_MODES)} (got {mode!r}).")
        if mode == "epoch" and not self._epoch_available():
            raise ValueError("x = epoch needs set_steps_per_epoch(n) first.")
        with QSignalBlocker(self.x_combo):
            self.x_combo.setCurrentIndex(X_MODES.index(mode))
        self._x_mode = mode
        set_axis_label(self.plot, "bottom", self._fixed_x_label or X_LABELS[mode])
        self._redraw_all()
        self.plot.enableAutoRange()

    def x_mode(self) -> str:
        return self._x_mode

    def set_fixed_x(self, label: str) -> None:
        """For curves whose x is not a training step (e.g. noise level): hide the x-mode chooser."""
        self._fixed_x_label = label
        self.x_label.hide()
        self.x_combo.hide()
        set_axis_label(self.plot, "bottom", label)

    def add_tool(self, widget: QWidget) -> None:
        """Put a caller's control (e.g. a checkbox) in the toolbar, before the Export button and the readout."""
        self._toolbar.insertWidget(self._toolbar.count() - 2, widget)

    # Hover readout.
    def readout_at(self, x: float) -> str:
        """Each shown series' point nearest x (plot coordinates; log10 on a log axis), as drawn.

        'step 1200: train loss 0.0712'; several series are joined with ' · '.
        """
        if self.log_x_box.isChecked():
            x = 10.0 ** x
        name = (self._fixed_x_label or X_LABELS[self._x_mode]).split(" (")[0]
        parts = []
        for s in self._series.values():
            if not s.n or not s.item.isVisible():
                continue
            xs = self._x(s)
            distance = np.abs(xs - x)
            if not np.isfinite(distance).any():
                continue
            i = int(np.nanargmin(distance))
            shown = s.smoothed[i] if s.smoothed is not None else s.values[i]
            text = f"{s.label} {shown:.4g}"
            if s.smoothed is not None:
                text += f" (raw {s.values[i]:.4g})"
            parts.append(f"{name} {xs[i]:.6g}: {text}")
        return " · ".join(parts)

    def title(self) -> str:
        return self._title

    def set_title(self, title: str) -> None:
        self._title = title
        self.plot.setTitle(title, color=FOREGROUND, size="11pt")

    # Drawing.
    def _add_series(self, name: str, label: str, color: QColor) -> _Series:
        series = _Series(name, label, color)
        # The faint raw curve goes in first so the smoothed one is drawn over it.
        series.raw_item = self.plot.plot([], [], connect="finite")
        series.item = self.plot.plot([], [], connect="finite", name=label)
        self._series[name] = series
        self._style(series)
        self._update_epoch_mode()
        return series

    def _style(self, series: _Series) -> None:
        smoothing = self._smoothing > 0
        series.item.setPen(pg.mkPen(series.color, width=1.6 if series.wide else 1.0))
        series.raw_item.setPen(pg.mkPen(faded(series.color, 70), width=1))
        series.raw_item.setVisible(smoothing)
        series.raw_item.setZValue(-1)

    def _relabel(self, series: _Series) -> None:
        self.legend.removeItem(series.item)
        self.legend.addItem(series.item, series.label)

    def _resmooth(self, series: _Series) -> None:
        if self._smoothing > 0:
            series.smoothed, series.ema_state = ema(series.view("values"), self._smoothing)
        else:
            series.smoothed, series.ema_state = None, EmaState()

    def _x(self, series: _Series) -> np.ndarray:
        steps = series.view("steps")
        spe = self._spe(series.name)
        if self._x_mode == "epoch" and spe:
            return steps / spe
        if self._x_mode == "time":
            times = series.view("times")
            finite = np.flatnonzero(np.isfinite(times))
            return times - times[finite[0]] if len(finite) else np.full(series.n, np.nan)
        return steps

    def _draw(self, series: _Series) -> None:
        # Qt rasterises wide pens segment by segment: past WIDE_PEN_MAX points, one pixel keeps paint cheap.
        if series.wide != (series.n <= WIDE_PEN_MAX):
            series.wide = not series.wide
            self._style(series)
        x = self._x(series)
        values = series.view("values")
        if series.smoothed is not None:
            series.item.setData(x, series.smoothed[:series.n])
            series.raw_item.setData(x, values)
        else:
            series.item.setData(x, values)
            series.raw_item.setData([], [])

    def _redraw_all(self) -> None:
        self._dirty.clear()
        for series in self._series.values():
            self._draw(series)
        self._settle()

    def _settle(self) -> None:
        """Fit the view range to the new data now, so the coming repaint is the only one.

        pyqtgraph defers auto-range to the start of a paint; the range change then marks the axes dirty
        and the whole plot painted a second time, one event-loop turn later (two paints per update).
        """
        if self.isVisible():
            self.plot_widget.scene().prepareForPaint()

    def _refresh(self) -> None:
        """The refresh timer: draw pending appends, unless hidden (then showEvent draws them)."""
        if self.isVisible():
            self.flush()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._dirty:
            self.flush()
        self._settle()          # data set while hidden: fit the range before the first paint, not during it

    def flush(self) -> None:
        """Draw pending appends now (otherwise the refresh timer does, at most 25 times a second)."""
        self._timer.stop()
        dirty, self._dirty = self._dirty, set()
        for name in dirty:
            if name in self._series:
                self._draw(self._series[name])
        if dirty:
            self._settle()

    # Export.
    def export_png(self, path: str | Path) -> Path:
        self.flush()
        return export.export_png(self.plot, path)

    def export_svg(self, path: str | Path) -> Path:
        self.flush()
        return export.export_svg(self.plot, path)

    def export_csv(self, path: str | Path) -> Path:
        """Every point of every series (not the decimated display): series,step,value,time."""
        def rows():
            for s in self._series.values():
                steps = s.view("steps")
                if np.array_equal(steps, np.round(steps)):
                    steps = steps.astype(np.int64)      # write 1200, not 1200.0
                yield from zip([s.name] * s.n, steps.tolist(), s.view("values").tolist(), s.view("times").tolist())
        return export.write_csv(path, ("series", "step", "value", "time"), rows())
