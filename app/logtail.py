"""Following a run's log.txt: read only the bytes added since the last look, keep the last lines."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtGui import QFont, QFontDatabase, QTextCursor
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

MAX_LINES = 5000
FIRST_READ_BYTES = 256 << 10    # on opening a long log, show its tail only


class LogTail(QPlainTextEdit):
    """A read-only view that follows a text file as it grows (call poll(), e.g. once a second)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setReadOnly(True)
        self.setMaximumBlockCount(MAX_LINES)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.setFont(font)
        self.path: Path | None = None
        self._offset = 0
        self._partial = b""

    def follow(self, path: Path | None) -> None:
        """Show `path` from its tail on; None shows nothing."""
        self.path = Path(path) if path else None
        self._offset = 0
        self._partial = b""
        self.clear()
        if self.path is not None:
            try:
                self._offset = max(0, os.path.getsize(self.path) - FIRST_READ_BYTES)
            except OSError:
                self._offset = 0
            self.poll()

    def poll(self) -> bool:
        """Append what the file gained; True if anything was added."""
        if self.path is None:
            return False
        try:
            size = os.path.getsize(self.path)
            if size < self._offset:             # rewritten: start over
                self._offset, self._partial = 0, b""
                self.clear()
            if size == self._offset:
                return False
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read(min(size - self._offset, 4 << 20))
        except OSError:
            return False
        self._offset += len(data)
        data = self._partial + data
        head, sep, self._partial = data.rpartition(b"\n")
        if not sep:
            self._partial = head
            return False
        # Progress bars written with \r: keep what the terminal would show last.
        lines = [line.rsplit("\r", 1)[-1] for line in head.decode("utf-8", "replace").split("\n")]
        bar = self.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        self.appendPlainText("\n".join(lines))
        if at_end:
            self.moveCursor(QTextCursor.MoveOperation.End)
            bar.setValue(bar.maximum())
        return True


class LogDialog(QDialog):
    """A window on one run's log, following it while it is open."""

    def __init__(self, title: str, path: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Log: {title}")
        self.resize(900, 520)
        self.tail = LogTail()
        self.tail.follow(path)
        where = QLabel(str(path))
        where.setStyleSheet("color: #666;")
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        bottom = QHBoxLayout()
        bottom.addWidget(where, 1)
        bottom.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tail, 1)
        layout.addLayout(bottom)

    def poll(self) -> None:
        self.tail.poll()
