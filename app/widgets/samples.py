"""SampleViewer: a run's sample grids with a step slider, enlarged pixel for pixel.

Images are read when shown (a few recent ones cached), so a long run's hundreds of grids cost
nothing until looked at. A file that is missing or unreadable shows one sentence instead.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QVBoxLayout, QWidget

from . import export
from .common import scaled_nearest

CACHE_SIZE = 16


class ScaledPicture(QLabel):
    """A label showing a QImage enlarged by whole factors (nearest neighbour), or a sentence instead."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._image = QImage()
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(96, 96)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setWordWrap(True)

    def image(self) -> QImage:
        return QImage(self._image)

    def set_image(self, image: QImage, message: str = "") -> None:
        self._image = image
        if image.isNull():
            self.clear()            # setText alone keeps the old pixmap when the text is unchanged
            self.setText(message)
        else:
            self._paint()

    def _paint(self) -> None:
        if not self._image.isNull():
            self.setPixmap(scaled_nearest(self._image, self.width(), self.height()))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._paint()


class SampleViewer(QWidget):
    """Sample grids by step: set_images([(step, absolute path)]), a slider, stepChanged(step)."""

    stepChanged = Signal(int)

    def __init__(self, title: str = "", parent=None):
        super().__init__(parent)
        self._title = title
        self._images: list[tuple[int, Path]] = []
        self._index = -1
        self._cache: OrderedDict[tuple[Path, float], QImage] = OrderedDict()
        self._shown = QImage()
        self._message = ""

        self.title_label = QLabel(title)
        self.title_label.setStyleSheet("font-weight: 600;")
        self.title_label.setWordWrap(True)          # a long run name wraps rather than widening the window
        self.title_label.setVisible(bool(title))
        self.picture = ScaledPicture()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(self._on_slider)
        self.step_label = QLabel("no samples yet")
        self.step_label.setMinimumWidth(90)
        self.export_button = export.make_export_button(self, self._export_name, {"png": self.export_png})

        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.step_label)
        row.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.title_label)
        layout.addWidget(self.picture, 1)
        layout.addLayout(row)

    # Data.
    def set_images(self, images: list[tuple[int, str | Path]]) -> None:
        """(step, absolute path) pairs; keeps the shown step, or follows the newest if it was shown."""
        was_last = self._index == len(self._images) - 1
        current = self.current_step()
        self._images = sorted(((int(s), Path(p)) for s, p in images if s is not None), key=lambda i: i[0])
        with QSignalBlocker(self.slider):
            self.slider.setRange(0, max(0, len(self._images) - 1))
            self.slider.setEnabled(len(self._images) > 1)
        if not self._images:
            self._index = -1
            self._show()
            return
        if current is None or was_last:
            index = len(self._images) - 1
        else:
            index = self._nearest(current)
        self._select(index, force=True)

    def steps(self) -> list[int]:
        return [s for s, _ in self._images]

    def current_step(self) -> int | None:
        return self._images[self._index][0] if 0 <= self._index < len(self._images) else None

    def current_path(self) -> Path | None:
        return self._images[self._index][1] if 0 <= self._index < len(self._images) else None

    def set_step(self, step: int) -> None:
        """Show the image nearest to `step` (ties: the earlier one)."""
        if self._images:
            self._select(self._nearest(int(step)))

    def message(self) -> str:
        """The sentence shown instead of an image ('' when an image is shown)."""
        return self._message

    def shown_image(self) -> QImage:
        return QImage(self._shown)

    def set_slider_visible(self, visible: bool) -> None:
        """Hide the own slider when a shared one drives several viewers (Compare)."""
        self.slider.setVisible(visible)

    def title(self) -> str:
        return self._title

    def set_title(self, title: str) -> None:
        self._title = title
        self.title_label.setText(title)
        self.title_label.setVisible(bool(title))

    def _nearest(self, step: int) -> int:
        return min(range(len(self._images)), key=lambda i: (abs(self._images[i][0] - step), i))

    def _on_slider(self, index: int) -> None:
        self._select(index)

    def _select(self, index: int, force: bool = False) -> None:
        old_step = self.current_step()
        changed = index != self._index
        self._index = index
        with QSignalBlocker(self.slider):
            self.slider.setValue(index)
        if changed or force:
            self._show()
        step = self.current_step()
        if step is not None and step != old_step:
            self.stepChanged.emit(step)

    # Display.
    def _load(self, path: Path) -> QImage | None:
        try:
            key = (path, path.stat().st_mtime)
        except OSError:
            return None
        image = self._cache.get(key)
        if image is None:
            image = QImage(str(path))
            if image.isNull():
                return None
            self._cache[key] = image
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return image

    def _show(self) -> None:
        step, path = (self._images[self._index] if self._index >= 0 else (None, None))
        self.step_label.setText("no samples yet" if step is None else f"step {step}")
        if path is None:
            self._shown, self._message = QImage(), "No sample grids yet."
        else:
            image = self._load(path)
            if image is None:
                what = "is missing" if not path.exists() else "is not an image Qt can read"
                self._shown, self._message = QImage(), f"The sample grid {path.name} {what}."
            else:
                self._shown, self._message = image, ""
        self.picture.set_image(self._shown, self._message)

    # Export.
    def _export_name(self) -> str:
        step = self.current_step()
        return f"{self._title or 'samples'}_step_{step}" if step is not None else "samples"

    def export_png(self, path: str | Path) -> Path:
        """The shown grid, pixel for pixel (not the enlarged display)."""
        if self._shown.isNull():
            raise OSError(f"There is no sample grid to export; {self._message or 'none is shown.'}")
        return export.export_qimage(self._shown, path)
