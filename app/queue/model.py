"""The queue table's Qt model: a thin adapter over the feed's QueueLine records; it never queries the database."""

from __future__ import annotations

import time
from collections.abc import Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from ddae_core.rundir import RunStatus

from ..eta import RemainingTime, clock, left_text
from ..formats import ID_ROLE, STATUS_COLORS
from .feed import FINAL_STATUSES, QueueLine

FRACTION_ROLE = Qt.ItemDataRole.UserRole + 2  # progress in 0..1, or None

_Index = QModelIndex | QPersistentModelIndex


class QueueModel(QAbstractTableModel):
    """The queue table; elapsed and time left move with the clock (time left from the shared estimate)."""

    HEADERS = ("Run", "Kind", "Status", "Progress", "Device", "Priority", "Elapsed", "Time left")
    PROGRESS_COLUMN = 3

    def __init__(self, parent=None, remaining: RemainingTime | None = None):
        super().__init__(parent)
        self._rows: list[QueueLine] = []
        self.remaining = remaining or RemainingTime()               # shared with the Run header
        self._waiting: dict[str, str] = {}                          # run -> why the scheduler holds it back

    def set_rows(self, rows: Sequence[QueueLine]) -> None:
        now = time.time()
        for row in rows:
            if row.status == RunStatus.RUNNING:
                self.remaining.observe(row.run, row.stage, row.done, row.total, now)
            elif row.status in FINAL_STATUSES:
                self.remaining.forget(row.run)
        if [r.run for r in rows] == [r.run for r in self._rows]:
            self._rows = list(rows)     # same rows, new values: no reset, so selection stays
            self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, len(self.HEADERS) - 1))
        else:
            self.beginResetModel()
            self._rows = list(rows)
            self.endResetModel()

    def set_waiting(self, reasons: dict[str, str]) -> None:
        """Why queued jobs wait, as the scheduler's last tick said (e.g. for a free CPU slot)."""
        if reasons != self._waiting:
            self._waiting = dict(reasons)
            if self._rows:
                self.dataChanged.emit(self.index(0, 3), self.index(len(self._rows) - 1, 3))

    def refresh_clock(self) -> None:
        """Elapsed and ETA move with time alone."""
        if self._rows:
            self.dataChanged.emit(self.index(0, 6), self.index(len(self._rows) - 1, 7))

    def row_at(self, row: int) -> QueueLine:
        return self._rows[row]

    def row_of(self, run_id: str) -> int | None:
        return next((i for i, r in enumerate(self._rows) if r.run == run_id), None)

    def rowCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        col = index.column()
        if role == ID_ROLE:
            return row.run
        if role == FRACTION_ROLE:
            return row.fraction
        if role == Qt.ItemDataRole.ForegroundRole and col == 2:
            return QBrush(QColor(STATUS_COLORS.get(row.status, "#444444")))
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.error if row.error else f"{row.name}\n{row.run}" + (f"\n{row.stage}" if row.stage else "")
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if col == 0:
            return row.name
        if col == 1:
            return row.kind
        if col == 2:
            return row.status
        if col == 3:
            if row.total:
                return f"{row.stage or ''} {row.done}/{row.total}".strip()
            return row.stage or self._waiting.get(row.run, "")     # a queued job's reason to wait
        if col == 4:
            return row.device
        if col == 5:
            return "" if row.priority is None else str(row.priority)
        if col == 6:
            if row.started is None:
                return ""
            end = row.finished if row.status != RunStatus.RUNNING and row.finished else time.time()
            return clock(end - row.started)
        if col == 7:
            running = row.status == RunStatus.RUNNING
            return left_text(self.remaining.seconds_left(row.run, time.time()) if running else None)
        return None
