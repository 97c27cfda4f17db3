"""The Run view's "Grid over training" tab: the probe heatmap at each probed checkpoint, played as a movie.

A step slider picks the checkpoint; Play steps through them on a timer (and stops at the last). The colour scale
is one for the whole movie, so a cell that brightens has grown; the best cell's path across training (one marker
per checkpoint, the current one ringed) is drawn over the heatmap.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout

from ddae_core.rundir.figures import percent

from ..widgets.heatmap import GridHeatmap
from .feed import RunUpdate
from .movie import GridMovie
from .panels import Panel

FRAME_MS = 700
EMPTY = ("No grids at several checkpoints yet. `ddae sweep --run RUN --probe grid --fid-n 0` (or Evaluate checkpoints "
         "while training, probe: grid) probes the whole grid at each checkpoint; they play here as a movie.")


class MoviePanel(Panel):
    title = "Grid over training"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.movie = GridMovie()
        self.index = -1
        self.heatmap = GridHeatmap("Probe accuracy (%) at each checkpoint, layer x noise level")
        self.heatmap.set_status(EMPTY)
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.play_button.toggled.connect(self.set_playing)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setPageStep(1)
        self.slider.valueChanged.connect(self.show_frame)
        self.step_label = QLabel("")
        self.timer = QTimer(self)
        self.timer.setInterval(FRAME_MS)
        self.timer.timeout.connect(self._advance)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 0, 4, 0)
        bar.addWidget(self.play_button)
        bar.addWidget(self.slider, 1)
        bar.addWidget(self.step_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(bar)
        layout.addWidget(self.heatmap, 1)
        self._enable()

    def apply(self, update: RunUpdate) -> None:
        if update.movie is not None:
            self.set_movie(update.movie)

    def set_movie(self, movie: GridMovie) -> None:
        """New frames: the axes and the colour scale of them all; the step shown stays (the newest on the first)."""
        step = self.movie.frames[self.index].step if 0 <= self.index < len(self.movie.frames) else None
        self.movie = movie
        self.heatmap.set_axes(list(movie.timesteps), list(movie.layers), dict(movie.labels))
        span = movie.value_range()
        if span is not None and span[1] > span[0]:
            self.heatmap.set_levels(*span)
        steps = movie.steps()
        index = steps.index(step) if step in steps else len(steps) - 1
        with QSignalBlocker(self.slider):
            self.slider.setRange(0, max(0, len(steps) - 1))
            self.slider.setValue(max(0, index))
        self._enable()
        self.show_frame(index)

    def _enable(self) -> None:
        several = len(self.movie.frames) > 1
        self.slider.setEnabled(several)
        self.play_button.setEnabled(several)
        if not several:
            self.set_playing(False)

    def show_frame(self, index: int) -> None:
        """The grid at the index-th probed checkpoint, with the best cell's path up to it and beyond."""
        frames = self.movie.frames
        if not 0 <= index < len(frames):
            self.index = -1
            self.heatmap.clear_cells()
            self.heatmap.set_path([])
            self.step_label.setText("")
            self.heatmap.set_status(EMPTY)
            return
        self.index = index
        frame = frames[index]
        if self.slider.value() != index:
            with QSignalBlocker(self.slider):
                self.slider.setValue(index)
        self.heatmap.clear_cells()
        self.heatmap.set_cells(frame.cells)
        path = self.movie.path()
        self.heatmap.set_path([(t, layer) for _, t, layer in path], [s for s, _, _ in path].index(frame.step)
                              if frame.step in [s for s, _, _ in path] else None)
        self.step_label.setText(f"step {frame.step:,} ({index + 1} of {len(frames)})")
        best = frame.best(self.movie.timesteps, self.movie.layers)
        text = f"Checkpoint at step {frame.step:,}, probe run {frame.probe_run}" + ("" if frame.final else ", running")
        if best is not None:
            text += f". Best: {best[1]} at t={best[0]}, {percent(best[2])}"
        moves = len({(t, layer) for _, t, layer in path})
        text += f". The dashed path is the best cell at each of {len(path)} checkpoints ({moves} distinct cells)."
        self.heatmap.set_status(text)

    def set_playing(self, on: bool) -> None:
        with QSignalBlocker(self.play_button):
            self.play_button.setChecked(on)
        self.play_button.setText("Pause" if on else "Play")
        if on:
            if self.index >= len(self.movie.frames) - 1:
                self.show_frame(0)          # from the start again
            self.timer.start()
        else:
            self.timer.stop()

    def _advance(self) -> None:
        if self.index + 1 >= len(self.movie.frames):
            self.set_playing(False)
            return
        self.show_frame(self.index + 1)
