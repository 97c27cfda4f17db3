"""ProbabilityBars: the top-k class probabilities as labelled horizontal bars."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from ddae_core.rundir.figures import percent

ROW_HEIGHT = 24
TOP_COLOR = QColor("#1f77b4")
OTHER_COLOR = QColor("#9ab8d3")


class ProbabilityBars(QWidget):
    """set_probabilities([(label, p), ...]) with p in 0..1, highest first."""

    def __init__(self, rows: int = 5, parent=None):
        super().__init__(parent)
        self._rows = rows
        self._items: list[tuple[str, float]] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumHeight(rows * ROW_HEIGHT + 4)

    def sizeHint(self) -> QSize:
        return QSize(320, self._rows * ROW_HEIGHT + 4)

    def set_probabilities(self, items: list[tuple[str, float]]) -> None:
        self._items = list(items)[:self._rows]
        self.update()

    def probabilities(self) -> list[tuple[str, float]]:
        return list(self._items)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        metrics = painter.fontMetrics()
        label_w = max([metrics.horizontalAdvance(label) for label, _ in self._items] + [60]) + 10
        value_w = metrics.horizontalAdvance("100.0%") + 8
        bar_w = max(10, self.width() - label_w - value_w - 4)
        for row, (label, p) in enumerate(self._items):
            y = 2 + row * ROW_HEIGHT
            text_rect = QRectF(0, y, label_w - 6, ROW_HEIGHT)
            painter.setPen(self.palette().windowText().color())
            painter.drawText(text_rect, int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), label)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#e8e8e8"))
            painter.drawRoundedRect(QRectF(label_w, y + 4, bar_w, ROW_HEIGHT - 8), 3, 3)
            painter.setBrush(TOP_COLOR if row == 0 else OTHER_COLOR)
            painter.drawRoundedRect(QRectF(label_w, y + 4, max(2.0, bar_w * p), ROW_HEIGHT - 8), 3, 3)
            painter.setPen(self.palette().windowText().color())
            painter.drawText(QRectF(label_w + bar_w + 4, y, value_w, ROW_HEIGHT),
                             int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), percent(p))
        painter.end()
