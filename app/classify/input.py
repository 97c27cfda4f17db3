"""How images reach the Classify view: drag and drop, paste (files or image data) and the Open dialog."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.webp *.gif *.tif *.tiff);;All files (*)"


class ImageInputMixin:
    """For a QWidget with load_files(paths), _set_status(text) and a QTemporaryDir in self._tmp."""

    def _ask_files(self) -> None:
        chosen, _ = QFileDialog.getOpenFileNames(self, "Open images", str(Path.home()), IMAGE_FILTER)
        if chosen:
            self.load_files(chosen)

    def paste(self) -> None:
        """Ctrl+V: image files copied in a file manager, or image data (a screenshot, a browser image)."""
        if not self.accept_mime(QGuiApplication.clipboard().mimeData()):
            self._set_status("The clipboard holds no image or image file; copy one first, then paste.")

    def accept_mime(self, mime) -> bool:
        """Load what a drop or paste carries; False if it carries no file and no image."""
        if mime is None:
            return False
        if mime.hasUrls():
            paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
            if paths:
                self.load_files(paths)
                return True
        if mime.hasImage():
            image = QImage(mime.imageData())
            if not image.isNull() and self._tmp.isValid():
                path = Path(self._tmp.path()) / f"pasted_{time.time_ns()}.png"
                if image.save(str(path), "PNG"):
                    self.load_files([path])
                    return True
        return False

    def dragEnterEvent(self, event) -> None:
        mime = event.mimeData()
        if (mime.hasUrls() and any(u.isLocalFile() for u in mime.urls())) or mime.hasImage():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        if self.accept_mime(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()
            self._set_status("Only image files can be dropped here.")
