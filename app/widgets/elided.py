"""A one-line label that never widens its window: it shows as much of its text as fits, with an ellipsis.

A plain QLabel asks its layout for the width of its whole text, so a long run name or a hover readout
pushes the window past the screen. This one asks for a few characters at least and its text's width at
best, and keeps the whole text in its tooltip (unless a tooltip is set).
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QLabel, QSizePolicy

MIN_CHARS = 8           # the narrowest it gets: about this many average characters


class ElidedLabel(QLabel):
    """Plain text on one line, elided (at `mode`) to the width the layout gives it."""

    def __init__(self, text: str = "", parent=None, mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight):
        super().__init__(parent)
        self._mode = mode
        self._own_tip = False
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setText(text)

    def setText(self, text: str) -> None:
        super().setText(text)
        if not self._own_tip:
            super().setToolTip(text if self.elided_text() != text else "")

    def setToolTip(self, tip: str) -> None:
        self._own_tip = bool(tip)
        super().setToolTip(tip or (self.text() if self.elided_text() != self.text() else ""))

    def elided_text(self) -> str:
        """The text as shown at the current width."""
        return self.fontMetrics().elidedText(self.text(), self._mode, max(self.contentsRect().width(), 0))

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), self.fontMetrics().averageCharWidth() * MIN_CHARS), hint.height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if not self._own_tip:
            super().setToolTip(self.text() if self.elided_text() != self.text() else "")

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        self.style().drawItemText(painter, self.contentsRect(), int(self.alignment()), self.palette(),
                                  self.isEnabled(), self.elided_text(), self.foregroundRole())
