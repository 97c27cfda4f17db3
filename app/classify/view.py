"""ClassifyView: drop images on a trained run and watch its head classify them as the noise goes up.

One forward pass at noise level t gives the noisy input, the network's denoised estimate and the
features the head reads: the paper's one network that both generates and recognises. Inference
runs on an InferenceThread; only the latest request's answer is shown.
"""

from __future__ import annotations

import time
from pathlib import Path

import shiboken6
from PySide6.QtCore import QCoreApplication, QEventLoop, QSignalBlocker, QSize, Qt, QTemporaryDir, Signal
from PySide6.QtGui import QIcon, QImage, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from ddae_core.engine.evaluation.certainty import tally, true_class
from ddae_core.rundir.figures import percent

from ..live import LiveHub
from ..widgets.bars import ProbabilityBars
from ..widgets.common import array_to_qimage, scaled_nearest
from ..widgets.noise_slider import NoiseSlider
from ..widgets.samples import ScaledPicture
from .feed import ClassifyFeed, HeadChoice, RunChoice
from .input import ImageInputMixin
from .lens import LensPanel
from .worker import InferenceThread, ModelInfo, Request, Result

MAX_FILES = 256
EMPTY_HINT = "Drop image files here, paste one (Ctrl+V), or press Open images…"


class ClassifyView(ImageInputMixin, QWidget):
    """Classify dropped, pasted or opened images with a run's probe or noisy-classifier head."""

    predictionShown = Signal(dict)

    def __init__(self, feed: ClassifyFeed, hub: LiveHub, parent=None, device: str = "auto"):
        super().__init__(parent)
        self.hub = hub
        self.watch_name = f"classify-{id(self)}"
        self._worker = InferenceThread(device)
        self._worker.resultReady.connect(self._on_result)
        self._choices: list[RunChoice] = []
        self._paths: list[Path] = []
        self._selected = -1
        self._preferred: str | None = None        # a run to open on once it can classify
        self._wanted_head: tuple[str, str | None, int | None] | None = None   # show_head's, until listed
        self._timestep: int | None = None        # wanted; None = the head's own
        self._info: ModelInfo | None = None
        self._next_id = 0
        self._latest_id = -1
        self._shown: Result | None = None
        self._last_answer_id = -1                 # the newest request answered (shown, or failed)
        self._status = ""
        self._tmp = QTemporaryDir()               # pasted images live here until the view goes (mixin)
        self.dropped_results = 0                  # stale answers not shown (tests read it)
        self.setAcceptDrops(True)

        self.run_combo = QComboBox()
        self.run_combo.setMinimumContentsLength(28)
        self.run_combo.currentIndexChanged.connect(self._on_run_changed)
        self.head_combo = QComboBox()
        self.head_combo.setMinimumContentsLength(24)
        self.head_combo.currentIndexChanged.connect(self._on_head_changed)
        self.open_button = QPushButton("Open images…")
        self.open_button.clicked.connect(self._ask_files)
        top = QHBoxLayout()
        for widget in (QLabel("Run"), self.run_combo, QLabel("Head"), self.head_combo):
            top.addWidget(widget)
        top.addStretch(1)
        top.addWidget(self.open_button)

        self.thumbnails = QListWidget()
        self.thumbnails.setViewMode(QListWidget.ViewMode.IconMode)
        self.thumbnails.setIconSize(QSize(64, 64))
        self.thumbnails.setGridSize(QSize(112, 104))
        self.thumbnails.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.thumbnails.setMovement(QListWidget.Movement.Static)
        self.thumbnails.setWordWrap(True)
        self.thumbnails.setMinimumWidth(240)
        self.thumbnails.currentRowChanged.connect(self._on_thumbnail)
        self.thumb_label = QLabel("Files")

        self.pictures = {name: ScaledPicture() for name in ("input", "noisy", "denoised")}
        self.picture_titles = {"input": QLabel("Your image, as the model sees it"),
                               "noisy": QLabel("Noisy input"), "denoised": QLabel("Denoised estimate")}
        grid = QGridLayout()
        for col, name in enumerate(("input", "noisy", "denoised")):
            self.picture_titles[name].setAlignment(Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(self.picture_titles[name], 0, col)
            grid.addWidget(self.pictures[name], 1, col)
            grid.setColumnStretch(col, 1)
        grid.setRowStretch(1, 1)
        self.noise = NoiseSlider()
        self.noise.timestepChanged.connect(self.set_noise_level)
        self.bars = ProbabilityBars(5)
        self.status_label = QLabel(EMPTY_HINT)
        self.status_label.setWordWrap(True)
        self.status_label.setStyleSheet("color: #505050;")

        left = QVBoxLayout()
        left.addWidget(self.thumb_label)
        left.addWidget(self.thumbnails, 1)
        right = QVBoxLayout()
        right.addLayout(grid, 1)
        right.addWidget(self.noise)
        right.addWidget(QLabel("Top-5 classes"))
        right.addWidget(self.bars)
        self.lens = LensPanel(device)       # what one (layer, t) feature map of the image sees
        right.addWidget(self.lens, 1)
        body = QHBoxLayout()
        body.addLayout(left, 1)
        body.addLayout(right, 3)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(body, 1)
        layout.addWidget(self.status_label)

        paste = QShortcut(QKeySequence(QKeySequence.StandardKey.Paste), self)
        paste.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        paste.activated.connect(self.paste)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        # A view deleted without close() (a workspace switch) still stops its thread first.
        worker = self._worker
        self.destroyed.connect(lambda *_: worker.stop() if shiboken6.isValid(worker) else None)
        lens = self.lens
        self.destroyed.connect(lambda *_: lens.shutdown() if shiboken6.isValid(lens) else None)
        # The runs that can classify are listed on the hub's reader thread, while this view is shown.
        hub.watch(self.watch_name, feed.read, self.set_choices, request=True, paused=not self.isVisible())

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.hub.resume(self.watch_name)     # re-lists once if a head run finished while hidden

    def hideEvent(self, event) -> None:
        super().hideEvent(event)
        self.hub.pause(self.watch_name)

    # Runs and heads.
    def set_choices(self, choices: list[RunChoice]) -> None:
        """On the GUI thread: the runs that can classify, as the feed listed them; the user's choice is kept."""
        current = self.run_combo.currentData()
        old_heads = {c.run_id: c.heads for c in self._choices}
        self._choices = choices
        with QSignalBlocker(self.run_combo):
            self.run_combo.clear()
            for choice in self._choices:
                self.run_combo.addItem(choice.label, choice.run_id)
            index = self.run_combo.findData(current)
            preferred = self.run_combo.findData(self._preferred) if self._preferred else -1
            if preferred >= 0:
                index, self._preferred = preferred, None
            self.run_combo.setCurrentIndex(index if index >= 0 else (0 if self._choices else -1))
        now = self.run_combo.currentData()
        if now != current or old_heads.get(now) != {c.run_id: c.heads for c in self._choices}.get(now):
            self._on_run_changed(self.run_combo.currentIndex())
        self._apply_wanted_head()
        if not self._choices:
            self._set_status("No run has a trained probe or noisy-classifier head yet; "
                             "run a probe grid or a noisy classifier on a trained model first.")

    def set_run(self, run_id: str) -> None:
        """Choose the run (a train run with heads, or a probe / noisy-classifier run) by id, among those listed."""
        index = self.run_combo.findData(run_id)
        if index < 0:
            self._set_status(f"Run {run_id} has no trained classifier head to use.")
            return
        self.run_combo.setCurrentIndex(index)

    def prefer_run(self, run_id: str) -> None:
        """Open on this run: now if it is listed, else as soon as the feed lists its head."""
        index = self.run_combo.findData(run_id)
        self._preferred = None if index >= 0 else run_id
        if index >= 0:
            self.run_combo.setCurrentIndex(index)
            return
        self.hub.request(self.watch_name)       # list the runs again

    def show_head(self, run_id: str, layer: str | None = None, timestep: int | None = None) -> None:
        """Open on a probe run's head of `layer` (None: its best cell's) at noise level `timestep` (None: the
        head's own), as a click on a probe grid's cell asks; now if the run is listed, else once it is."""
        self._wanted_head = (run_id, layer, timestep)
        if self.run_combo.findData(run_id) < 0:
            self.prefer_run(run_id)
            self._set_status(f"Waiting for run {run_id}'s trained heads; a grid's heads are saved when it finishes.")
            return
        self._apply_wanted_head()

    def _apply_wanted_head(self) -> None:
        if self._wanted_head is None or self.run_combo.findData(self._wanted_head[0]) < 0:
            return
        run_id, layer, timestep = self._wanted_head
        self._wanted_head = None
        self.set_run(run_id)
        layers = [self.head_combo.itemData(i).layer for i in range(self.head_combo.count())]
        if layer in layers:
            self.set_head(layers.index(layer))
        if timestep is not None:
            self.set_noise_level(timestep)

    def set_head(self, index: int) -> None:
        self.head_combo.setCurrentIndex(index)

    def current_head(self) -> HeadChoice | None:
        return self.head_combo.currentData()

    def _on_run_changed(self, index: int) -> None:
        choice = self._choices[index] if 0 <= index < len(self._choices) else None
        previous = self.current_head()
        with QSignalBlocker(self.head_combo):
            self.head_combo.clear()
            for head in choice.heads if choice else ():
                self.head_combo.addItem(head.label, head)
            keys = [h.key for h in choice.heads] if choice else []
            # Keep the user's head when the list is only refreshed.
            self.head_combo.setCurrentIndex(keys.index(previous.key) if previous and previous.key in keys
                                            else (0 if choice else -1))
        if self.current_head() != previous or previous is None:
            self._on_head_changed(self.head_combo.currentIndex())

    def _on_head_changed(self, _index: int) -> None:
        self._info, self._timestep = None, None
        self.noise.disable()
        self._submit(thumbnails=True, loading=True)

    # Files.
    def load_files(self, paths) -> None:
        """Add image files (folders add the files inside them and their class subfolders); the first is selected."""
        from ddae_core.engine.evaluation.classify import expand_images

        added = [p for p in expand_images(list(paths)) if p not in self._paths]
        room = MAX_FILES - len(self._paths)
        if not added:
            return
        self._paths += added[:room]
        self._selected = self._paths.index(added[0]) if added[0] in self._paths else self._selected
        self._rebuild_thumbnails()
        self._submit(thumbnails=True)
        if len(added) > room:
            self._set_status(f"Only the first {MAX_FILES} files are kept; {len(added) - room} were left out.")

    def clear_files(self) -> None:
        self._paths, self._selected = [], -1
        self._rebuild_thumbnails()
        self._show_result(None)
        self._set_status(EMPTY_HINT)

    def files(self) -> list[Path]:
        return list(self._paths)

    def select_file(self, index: int) -> None:
        self.thumbnails.setCurrentRow(index)

    def _rebuild_thumbnails(self) -> None:
        with QSignalBlocker(self.thumbnails):
            self.thumbnails.clear()
            for path in self._paths:
                item = QListWidgetItem(path.name)
                item.setToolTip(str(path))
                self.thumbnails.addItem(item)
            self.thumbnails.setCurrentRow(self._selected)
        self.thumb_label.setText(f"Files ({len(self._paths)})" if self._paths else "Files")

    def _on_thumbnail(self, row: int) -> None:
        if row != self._selected and 0 <= row < len(self._paths):
            self._selected = row
            self._submit(thumbnails=False)

    # Noise level.
    def set_noise_level(self, t: int) -> None:
        """The timestep (DDPM) or sigma index (EDM) to classify at; clamped to the model's range."""
        self._timestep = self.noise.clamp(t) if self._info is not None else int(t)
        if self._info is not None:
            self.noise.set_timestep(self._timestep)
        self._submit(thumbnails=False)

    # Requests and results.
    def _submit(self, thumbnails: bool, loading: bool = False) -> None:
        head = self.current_head()
        if head is None:
            if self._paths:
                self._set_status("Choose a run with a trained head to classify these images.")
            return
        if not self._paths:
            self._set_status(f"Loading {head.label}… " + EMPTY_HINT if loading else EMPTY_HINT)
            if not loading:
                return
        elif loading:
            self._set_status(f"Loading the model and {head.label}…")
        self._next_id += 1
        self._latest_id = self._next_id
        self._worker.submit(Request(self._latest_id, head, tuple(self._paths), self._selected,
                                    self._timestep, thumbnails))

    def _on_result(self, result: Result) -> None:
        if result.id != self._latest_id:
            self.dropped_results += 1           # an older request's answer: never shown
            return
        self._last_answer_id = result.id
        if result.error:
            self._info = None
            self.noise.disable()
            self._show_result(None)
            self._set_status(result.error)
            return
        if result.info != self._info:
            info = self._info = result.info
            t = info.default_timestep if self._timestep is None else self._timestep
            self.noise.configure(info.framework, info.min_timestep, info.max_timestep, info.sigmas, t)
            self.noise.set_head_timesteps(info.head_timesteps)
            self._timestep = self.noise.timestep()
        self._update_thumbnails(result)
        self._show_result(result)

    def _update_thumbnails(self, result: Result) -> None:
        warning = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        for row, outcome in enumerate(result.files[:self.thumbnails.count()]):
            item = self.thumbnails.item(row)
            if outcome.error:
                item.setIcon(warning)
                item.setText(f"{outcome.path.name}\nnot readable")
                item.setToolTip(outcome.error)
                continue
            item.setIcon(QIcon(scaled_nearest(array_to_qimage(outcome.image), 64, 64)))
            label = f"{outcome.top1[0]} {percent(outcome.top1[1], places=0)}" if outcome.top1 else ""
            truth = self._truth(outcome.path)
            if truth is not None and outcome.top1:
                label += " ✓" if outcome.top1[0] == truth else f" ✗ ({truth})"
            item.setText(f"{outcome.path.name}\n{label}")
            item.setToolTip(f"{outcome.path}\n{label} at the head's noise level")
        if self._info is not None:
            right, n = self.folder_tally(result)
            score = f": {right} of {n} right ({percent(right / n, places=0)})" if n else ""
            self.thumb_label.setText(f"Files ({len(result.files)}), labels at t={self._info.default_timestep}{score}")

    def _truth(self, path: Path) -> str | None:
        """The class the file's folder names, if the model knows it."""
        return true_class(path, self._info.classes) if self._info is not None else None

    def folder_tally(self, result: Result | None = None) -> tuple[int, int]:
        """(right, N) of the head's top-1 over the files whose folder names their class."""
        result = result or self._shown
        files = result.files if result else []
        return tally((o.top1[0] if o.top1 else None, self._truth(o.path)) for o in files if o.error is None)

    def _show_result(self, result: Result | None) -> None:
        self._shown = result
        chosen = result.files[result.selected] if result and 0 <= result.selected < len(result.files) else None
        ok = chosen is not None and chosen.error is None and result.noisy is not None
        self.pictures["input"].set_image(array_to_qimage(chosen.image) if ok else QImage(), "")
        self.pictures["noisy"].set_image(array_to_qimage(result.noisy) if ok else QImage(), "")
        self.pictures["denoised"].set_image(array_to_qimage(result.denoised) if ok else QImage(), "")
        self.bars.set_probabilities(result.top5 if ok else [])
        if result is None:
            return
        if ok:
            self.noise.set_timestep(result.timestep, result.head_timestep if self._info.head_timesteps else None)
            self.lens.set_source(self.current_head(), self._paths, result.selected, result.timestep)
        problems = [o for o in result.files if o.error]
        if chosen is None:
            status = EMPTY_HINT
        elif chosen.error:
            status = chosen.error
        else:
            status = f"{chosen.path.name}: " + ("; ".join(chosen.notes) + "." if chosen.notes else
                                                "classified as it is.")
            truth = self._truth(chosen.path)
            if truth is not None:
                answer = result.top5[0][0] if result.top5 else None
                status += f" True class (its folder): {truth}, " + ("right." if answer == truth else
                                                                      f"not the answer ({answer}).")
            if self.noise.warning_text():
                status += " " + self.noise.warning_text()
        others = [o for o in problems if o is not chosen]
        if others:
            status += f" ({len(others)} other file(s) could not be read; click one to see why.)"
        self._set_status(status)
        self.predictionShown.emit({"file": str(chosen.path) if chosen else None, "timestep": result.timestep,
                                   "top5": list(result.top5) if ok else [], "status": status})

    def _set_status(self, text: str) -> None:
        self._status = text
        self.status_label.setText(text)

    # For tests and the app.
    @property
    def busy(self) -> bool:
        """True while the latest request has no answer on screen yet."""
        return not self._answered()

    def wait_idle(self, timeout_ms: int = 30000) -> bool:
        """Process events until the latest request's answer is shown (or failed); False on timeout."""
        deadline = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < deadline:
            if self._answered():
                return True
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.005)
        return self._answered()

    def _answered(self) -> bool:
        return self._latest_id <= 0 or self._last_answer_id == self._latest_id

    @property
    def noise_level(self) -> int | None:
        """The noise level of the prediction on screen."""
        return self._shown.timestep if self._shown else None

    @property
    def top5(self) -> list[tuple[str, float]]:
        return list(self._shown.top5) if self._shown else []

    @property
    def top5_labels(self) -> list[str]:
        return [label for label, _ in self.top5]

    @property
    def top5_probabilities(self) -> list[float]:
        return [p for _, p in self.top5]

    @property
    def status_message(self) -> str:
        return self._status

    def shown_images(self) -> dict[str, QImage]:
        """The input, noisy and denoised images on screen (null images when none)."""
        return {name: picture.image() for name, picture in self.pictures.items()}

    def shutdown(self) -> None:
        """Stop the inference thread (after its current forward pass) and the feed's reads."""
        self.hub.unwatch(self.watch_name)
        self._worker.stop()
        self.lens.shutdown()

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)
