"""Classify's lens: what one (layer, t) feature map of the chosen image sees, and where a second image matches it.

PCA-to-RGB pictures of the unpooled feature map of the image on screen and of a second image (engine
evaluation/lens.py), and, for a clicked pixel of the first, the cosine-correspondence heatmap over the second
(DIFT-style). The forward passes run on a LensThread (the model is loaded there once per head); the view keeps
the two feature maps it was sent, so a click costs one cosine over a few thousand pixels, not a forward pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import QEventLoop, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QComboBox, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ..background import Latest, Worker
from ..widgets.common import array_to_qimage
from ..widgets.samples import ScaledPicture
from .feed import HeadChoice

IDLE_EXIT_S = 20.0
HEAT_MAP = "viridis"


@dataclass(frozen=True)
class LensRequest:
    id: int
    head: HeadChoice
    first: Path
    second: Path
    timestep: int
    layer: str | None                   # None: the head's layer


@dataclass
class LensResult:
    id: int
    error: str | None = None
    layers: tuple[str, ...] = ()        # the model's taps, in network order
    layer: str = ""
    images: tuple[np.ndarray, ...] = ()          # the two images as the model sees them, (R, R, 3) uint8
    colours: tuple[np.ndarray, ...] = ()         # their PCA pictures, (R, R, 3) uint8
    maps: tuple[object, ...] = field(default=(), repr=False)   # their feature maps, (C, h, w) float tensors


class LensThread(Worker):
    """Runs the newest LensRequest; emits delivered(LensResult)."""

    def __init__(self, device: str = "auto", parent=None):
        super().__init__("ddae-lens", parent=parent)
        self.device = device
        self._requests: Latest[LensRequest] = Latest()
        self._classifier: tuple[tuple, object] | None = None

    def submit(self, request: LensRequest) -> None:
        if self._requests.put(request):
            self.wait()
            self.start()

    def stop(self, timeout_ms: int = 30000) -> bool:
        self.request_stop()
        self._requests.close()
        return self.wait(timeout_ms)

    def work(self) -> None:
        try:
            while (request := self._requests.take(IDLE_EXIT_S)) is not None:
                self.deliver(self._process(request))
        except BaseException:
            self._requests.abandoned()
            raise

    def _model(self, head: HeadChoice):
        from ddae_core.engine.evaluation.classify import Classifier

        if self._classifier is None or self._classifier[0] != head.key:
            self._classifier = (head.key, Classifier.from_run(head.run_dir, head=head.head, layer=head.layer,
                                                              device=self.device))
        return self._classifier[1]

    def _process(self, request: LensRequest) -> LensResult:
        from ddae_core.engine.errors import UserError
        from ddae_core.engine.evaluation.lens import feature_map, pca_rgb
        from ddae_core.engine.image_files import load_image

        result = LensResult(request.id)
        try:
            clf = self._model(request.head)
            model = clf.model
            layer = request.layer if request.layer in model.taps else clf.layer
            images = [load_image(path, model.resolution).image for path in (request.first, request.second)]
            t = max(int(model.framework.min_timestep), min(int(model.framework.max_timestep), request.timestep))
            maps = [feature_map(model, image, t, layer) for image in images]     # one seed: the same noise for both
        except UserError as exc:
            result.error = str(exc)
            return result
        except Exception as exc:  # noqa: BLE001 - a damaged checkpoint or image: one sentence, not a dead thread
            result.error = f"The lens could not look at these images ({exc.__class__.__name__}: {str(exc)[:200]})."
            return result
        result.layers, result.layer, result.maps = tuple(model.taps), layer, tuple(maps)
        result.images = tuple(_uint8(image.permute(1, 2, 0).numpy()) for image in images)
        result.colours = tuple(_uint8(pca_rgb(fmap, model.resolution).numpy()) for fmap in maps)
        return result


def _uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


class ClickablePicture(ScaledPicture):
    """A ScaledPicture that says which image pixel (row, column) was clicked."""

    pixelClicked = Signal(int, int)

    def pixel_at(self, x: float, y: float) -> tuple[int, int] | None:
        pixmap, image = self.pixmap(), self.image()
        if pixmap is None or pixmap.isNull() or image.isNull():
            return None
        left, top = (self.width() - pixmap.width()) / 2, (self.height() - pixmap.height()) / 2
        col = int((x - left) * image.width() / pixmap.width())
        row = int((y - top) * image.height() / pixmap.height())
        return (row, col) if 0 <= row < image.height() and 0 <= col < image.width() else None

    def mousePressEvent(self, event) -> None:
        pixel = self.pixel_at(event.position().x(), event.position().y())
        if pixel is not None:
            self.pixelClicked.emit(*pixel)
        super().mousePressEvent(event)


class LensPanel(QWidget):
    """The lens: a layer choice, a second image, PCA pictures of both and the clicked pixel's correspondence."""

    def __init__(self, device: str = "auto", parent=None):
        super().__init__(parent)
        self._thread = LensThread(device)
        self._thread.delivered.connect(self._on_result)
        self._head: HeadChoice | None = None
        self._paths: list[Path] = []
        self._selected, self._timestep = -1, 0
        self._next_id, self._latest_id, self._answered_id = 0, -1, -1
        self._shown: LensResult | None = None
        self._pixel: tuple[int, int] | None = None
        self._layer: str | None = None                 # the tap asked for; None: the head's
        self.heat: np.ndarray | None = None          # the correspondence on screen, (R, R) in -1..1
        self._colours = pg.colormap.get(HEAT_MAP)

        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("The tap whose unpooled feature map the pictures show")
        self.layer_combo.currentIndexChanged.connect(self._layer_chosen)
        self.second_combo = QComboBox()
        self.second_combo.setToolTip("The image the clicked pixel is looked for in")
        self.second_combo.currentIndexChanged.connect(lambda _: self._submit())
        controls = QHBoxLayout()
        for widget in (QLabel("Lens: layer"), self.layer_combo, QLabel("second image"), self.second_combo):
            controls.addWidget(widget)
        controls.addStretch(1)
        self.pictures = {name: ClickablePicture() for name in ("first", "first_pca", "second_pca", "match")}
        titles = {"first": "Click a pixel", "first_pca": "Its features (PCA to RGB)",
                  "second_pca": "Second image's features", "match": "Where the second image matches it"}
        grid = QGridLayout()
        for col, name in enumerate(self.pictures):
            label = QLabel(titles[name])
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setWordWrap(True)             # four titles in a row must not widen the window past a small screen
            grid.addWidget(label, 0, col)
            grid.addWidget(self.pictures[name], 1, col)
            grid.setColumnStretch(col, 1)
        for name in ("first", "first_pca"):
            self.pictures[name].pixelClicked.connect(self.click)
        self.status = QLabel("")
        self.status.setStyleSheet("color: #505050;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(controls)
        layout.addLayout(grid, 1)
        layout.addWidget(self.status)

    # Inputs.
    def set_source(self, head: HeadChoice | None, paths: list[Path], selected: int, timestep: int | None) -> None:
        """The head (its model), the files, the one on screen and the noise level; recomputes only on a change."""
        paths = list(paths)
        if paths != self._paths:
            with QSignalBlocker(self.second_combo):
                current = self.second_combo.currentData()
                self.second_combo.clear()
                for path in paths:
                    self.second_combo.addItem(path.name, str(path))
                index = self.second_combo.findData(current)
                self.second_combo.setCurrentIndex(index if index >= 0 else min(1, len(paths) - 1))
        state = (head, paths, selected, timestep)
        if state == (self._head, self._paths, self._selected, self._timestep):
            return
        self._head, self._paths, self._selected = head, paths, selected
        self._timestep = int(timestep) if timestep is not None else self._timestep
        self._submit()

    def set_layer(self, layer: str) -> None:
        """Look through this tap (kept for the next image when the model's taps are not listed yet)."""
        self._layer = layer
        index = self.layer_combo.findData(layer)
        if index >= 0 and index != self.layer_combo.currentIndex():
            self.layer_combo.setCurrentIndex(index)         # submits
        else:
            self._submit()

    def set_second(self, index: int) -> None:
        self.second_combo.setCurrentIndex(index)

    def _layer_chosen(self, index: int) -> None:
        self._layer = self.layer_combo.itemData(index)
        self._submit()

    def _submit(self) -> None:
        if self._head is None or not (0 <= self._selected < len(self._paths)):
            return
        second = self.second_combo.currentData()
        self._next_id += 1
        self._latest_id = self._next_id
        self._thread.submit(LensRequest(self._latest_id, self._head, self._paths[self._selected],
                                        Path(second) if second else self._paths[self._selected], self._timestep,
                                        self._layer))

    # Results.
    def _on_result(self, result: LensResult) -> None:
        if result.id != self._latest_id:
            return
        self._answered_id = result.id
        if result.error:
            self._shown = None
            self.status.setText(result.error)
            return
        self._shown = result
        with QSignalBlocker(self.layer_combo):
            if [self.layer_combo.itemData(i) for i in range(self.layer_combo.count())] != list(result.layers):
                self.layer_combo.clear()
                for layer in result.layers:
                    self.layer_combo.addItem(layer, layer)
            self.layer_combo.setCurrentIndex(self.layer_combo.findData(result.layer))
        self.pictures["first"].set_image(array_to_qimage(result.images[0]))
        self.pictures["first_pca"].set_image(array_to_qimage(result.colours[0]))
        self.pictures["second_pca"].set_image(array_to_qimage(result.colours[1]))
        size = result.images[0].shape[0]
        self.click(*(self._pixel or (size // 2, size // 2)))

    def click(self, row: int, col: int) -> None:
        """Show where the second image's features match pixel (row, col) of the first."""
        from ddae_core.engine.evaluation.lens import correspondence

        result = self._shown
        if result is None:
            return
        size = result.images[0].shape[0]
        self._pixel = (row, col)
        self.heat = correspondence(result.maps[0], result.maps[1], row, col, size).numpy()
        colours = self._colours.map((self.heat + 1) / 2, mode="byte")[..., :3]
        blended = (0.35 * result.images[1] + 0.65 * colours).astype(np.uint8)
        best = np.unravel_index(int(np.argmax(self.heat)), self.heat.shape)
        blended[best] = (255, 45, 45)
        self.pictures["match"].set_image(array_to_qimage(blended))
        marked = result.images[0].copy()
        marked[row, col] = (255, 45, 45)
        self.pictures["first"].set_image(array_to_qimage(marked))
        self.status.setText(f"{result.layer} at t={self._timestep}: pixel ({row}, {col}) matches best at "
                            f"({best[0]}, {best[1]}) of the second image (cosine {self.heat[best]:.2f}).")

    # For tests and the view.
    def shown(self) -> LensResult | None:
        return self._shown

    def picture(self, name: str) -> QImage:
        return self.pictures[name].image()

    def wait_idle(self, timeout_ms: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < deadline:
            if self._latest_id <= 0 or self._answered_id == self._latest_id:
                return True
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.005)
        return False

    def shutdown(self) -> None:
        """Stop the lens's thread (after its current forward pass); one already deleted (at exit) is left alone."""
        if shiboken6.isValid(self._thread):
            self._thread.stop()
