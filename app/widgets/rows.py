"""A read-only table of plain values (runs' summaries, spec differences, best checkpoints), shared by the views."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QColor

from ddae_core.rundir.figures import percent


class Percent(float):
    """An accuracy 0..1 shown as a percentage; CSV still gets the fraction."""


class RowsModel(QAbstractTableModel):
    """Read-only table of plain values; column 0 may carry a colour swatch per row (the run's colour)."""

    def __init__(self, headers: Sequence[str] = (), parent=None):
        super().__init__(parent)
        self._headers: list[str] = list(headers)
        self._rows: list[tuple] = []
        self._colors: list[QColor | None] = []

    def set_rows(self, headers: Sequence[str], rows: Sequence[Sequence], colors: Sequence[QColor | None] = ()) -> None:
        self.beginResetModel()
        self._headers = list(headers)
        self._rows = [tuple(r) for r in rows]
        self._colors = list(colors) + [None] * (len(self._rows) - len(colors))
        self.endResetModel()

    def headers(self) -> list[str]:
        return list(self._headers)

    def rows(self) -> list[tuple]:
        return list(self._rows)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._headers)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        value = self._rows[index.row()][index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return format_value(value)
        if role == Qt.ItemDataRole.DecorationRole and index.column() == 0:
            return self._colors[index.row()]
        if role == Qt.ItemDataRole.TextAlignmentRole and isinstance(value, (int, float)):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return value
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self._headers[section] if section < len(self._headers) else None
        return None


def format_value(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, Percent):
        return "—" if math.isnan(value) else percent(value)
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)
