"""Following a run's log.txt: read only the bytes added since the last look, keep the last lines."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtGui import QFont, QFontDatabase, QTextCursor
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from ddae_core.rundir import read_new_lines

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

    def follow(self, path: Path | None) -> None:
        """Show `path` from its tail on; None shows nothing."""
        self.path = Path(path) if path else None
        self._offset = 0
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
            found = read_new_lines(self.path, self._offset, 4 << 20)
        except OSError:
            return False
        if found is None:
            return False
        if found.rewound:                       # rewritten: start over
            self.clear()
        self._offset = found.end
        if not found.lines:                     # only a line still being written
            return False
        # Progress bars written with \r: keep what the terminal would show last.
        lines = [line.decode("utf-8", "replace").rsplit("\r", 1)[-1] for line in found.lines]
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
