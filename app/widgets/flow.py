"""A toolbar layout that wraps onto another line instead of widening its window (Qt's flow-layout example).

Items keep their size hint, in order, left to right; one that does not fit starts a new line. A filler
(addFiller: a hover readout) takes the rest of its line, or a line of its own when less than its minimum
is left. Its minimum width is its widest item's, so a window holding
two plots side by side still fits a small screen.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtWidgets import QLayout, QLayoutItem, QWidgetItem


class FlowLayout(QLayout):
    def __init__(self, parent=None, spacing: int = 6):
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._fillers: set[int] = set()         # id() of the items that take the rest of their line
        self.setSpacing(spacing)

    def addFiller(self, widget) -> None:
        """Add `widget` to take the rest of its line (a line of its own when less than its minimum is left)."""
        self.addWidget(widget)
        self._fillers.add(id(self._items[-1]))

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def insertWidget(self, index: int, widget) -> None:
        """Put `widget` before the item at `index`."""
        self.addChildWidget(widget)
        self._items.insert(index, QWidgetItem(widget))
        self.invalidate()

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        if not 0 <= index < len(self._items):
            return None
        item = self._items.pop(index)
        self._fillers.discard(id(item))
        return item

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._place(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._place(rect, move=True)

    def sizeHint(self) -> QSize:
        margins = self.contentsMargins()
        width = sum(i.sizeHint().width() for i in self._visible()) + self.spacing() * max(len(self._visible()) - 1, 0)
        height = max((i.sizeHint().height() for i in self._visible()), default=0)
        return QSize(width + margins.left() + margins.right(), height + margins.top() + margins.bottom())

    def minimumSize(self) -> QSize:
        size = QSize()
        for item in self._visible():
            size = size.expandedTo(item.minimumSize())
        margins = self.contentsMargins()
        return size + QSize(margins.left() + margins.right(), margins.top() + margins.bottom())

    def _visible(self) -> list[QLayoutItem]:
        return [i for i in self._items if not (i.widget() is not None and i.widget().isHidden())]

    def _place(self, rect: QRect, move: bool) -> int:
        """Lay the items out in `rect` (when `move`), each centred on its line; the height they take."""
        margins = self.contentsMargins()
        area = rect.adjusted(margins.left(), margins.top(), -margins.right(), -margins.bottom())
        lines: list[list[tuple[QLayoutItem, int, int]]] = [[]]         # (item, x, width) per line
        x, gap = area.x(), self.spacing()
        for item in self._visible():
            width = min(item.sizeHint().width(), area.width())
            if id(item) in self._fillers:
                width = max(area.right() + 1 - x, 0)
                if width < item.minimumSize().width() and x > area.x():
                    x, width = area.x(), area.width()
                    lines.append([])
            elif x + width > area.right() + 1 and x > area.x():
                x = area.x()
                lines.append([])
            lines[-1].append((item, x, width))
            x += width + gap
        y = area.y()
        for line in lines:
            height = max((item.sizeHint().height() for item, _, _ in line), default=0)
            if move:
                for item, left, width in line:
                    h = item.sizeHint().height()
                    item.setGeometry(QRect(QPoint(left, y + (height - h) // 2), QSize(width, h)))
            y += height + gap
        return max(y - gap, area.y()) - rect.y() + margins.bottom()
