"""Qt table models: thin adapters over the Store's plain records (RunSummary, QueueEntry).

They never query the database. The views' controllers hand them records; edits leave through
signals so the controller writes them to the Store and the next change poll brings them back.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor

from db import QueueEntry, RunSummary
from db.records import FINAL_STATUSES
from ddae_core.engine.evaluation import protocols
from ddae_core.rundir import RunStatus, figures

from .eta import RemainingTime, clock, left_text

ID_ROLE = Qt.ItemDataRole.UserRole + 1        # the run id of a row
FRACTION_ROLE = Qt.ItemDataRole.UserRole + 2  # progress in 0..1, or None
SORT_ROLE = Qt.ItemDataRole.UserRole + 3

STATUS_COLORS = {
    RunStatus.QUEUED: "#8a8f98", RunStatus.RUNNING: "#1f77b4", RunStatus.DONE: "#2ca02c",
    RunStatus.FAILED: "#d62728", RunStatus.CANCELLED: "#9467bd", RunStatus.INTERRUPTED: "#ff7f0e",
}

_Index = QModelIndex | QPersistentModelIndex


def when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else ""


def percent(value: float | None) -> str:
    return figures.percent(value, missing="")


def gains_text(run: RunSummary) -> str:
    """`+60.1 / +41.0` over raw pixels / random init of the run's headline grid, or 'no baselines'."""
    return protocols.gains_text(run.best_accuracy, run.baseline_pixels, run.baseline_random)


def accuracy_tooltip(run: RunSummary) -> str:
    return protocols.headline_tooltip(run.best_accuracy, run.best_protocol, run.baseline_pixels,
                                      run.baseline_random, run.best_grid if run.best_grid != run.id else None)


class RunTableModel(QAbstractTableModel):
    """One page of the run table. Sorting is done by the database: sort() only asks for it."""

    COLUMNS = ("name", "kind", "status", "data", "best_accuracy", "gains", "last_loss", "tags", "notes", "created")
    HEADERS = ("Name", "Kind", "Status", "Dataset", "Best probe acc.", "Over pixels / random init", "Last loss",
               "Tags", "Notes", "Created")
    EDITABLE = ("name", "tags", "notes")
    SORTABLE = ("name", "kind", "status", "data", "best_accuracy", "last_loss", "created")

    sort_requested = Signal(str, bool)          # order_by, descending
    edit_requested = Signal(str, str, object)   # run id, column name, new value

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list[RunSummary] = []
        self._row_of: dict[str, int] = {}

    # Feeding.
    def set_rows(self, rows: Sequence[RunSummary]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._row_of = {r.id: i for i, r in enumerate(self._rows)}
        self.endResetModel()

    def update_rows(self, rows: Iterable[RunSummary]) -> list[RunSummary]:
        """Replace rows already shown, in place; returns the runs this page does not show."""
        missing = []
        last = len(self.COLUMNS) - 1
        for run in rows:
            i = self._row_of.get(run.id)
            if i is None:
                missing.append(run)
                continue
            if self._rows[i] != run:
                self._rows[i] = run
                self.dataChanged.emit(self.index(i, 0), self.index(i, last))
        return missing

    def run_at(self, row: int) -> RunSummary:
        return self._rows[row]

    def row_of(self, run_id: str) -> int | None:
        return self._row_of.get(run_id)

    def runs(self) -> list[RunSummary]:
        return list(self._rows)

    # Qt model.
    def rowCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        base = super().flags(index)
        if index.isValid() and self.COLUMNS[index.column()] in self.EDITABLE:
            base |= Qt.ItemFlag.ItemIsEditable
        return base

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        run = self._rows[index.row()]
        column = self.COLUMNS[index.column()]
        if role == ID_ROLE:
            return run.id
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(run, column)
        if role == Qt.ItemDataRole.EditRole:
            if column == "tags":
                return ", ".join(run.tags)
            return run.notes if column == "notes" else run.name
        if role == Qt.ItemDataRole.ForegroundRole and column == "status":
            return QBrush(QColor(STATUS_COLORS.get(run.status, "#444444")))
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == "status" and run.error:
                return run.error
            if column == "name":
                return f"{run.name}\n{run.id}"
            if column == "notes" and run.notes:
                return run.notes
            if column in ("best_accuracy", "gains") and run.best_accuracy is not None:
                return accuracy_tooltip(run)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in ("best_accuracy", "gains", "last_loss"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _text(run: RunSummary, column: str) -> str:
        if column == "best_accuracy":
            return protocols.accuracy_text(run.best_accuracy, run.best_protocol)
        if column == "gains":
            return gains_text(run)
        if column == "last_loss":
            return f"{run.last_loss:.4f}" if run.last_loss is not None else ""
        if column == "tags":
            return ", ".join(run.tags)
        if column == "notes":
            return run.notes.splitlines()[0] if run.notes else ""
        if column == "created":
            return when(run.created)
        if column == "status" and run.status == RunStatus.RUNNING and run.progress_fraction is not None:
            return f"running {run.progress_fraction:.0%}"
        value = getattr(run, column)
        return "" if value is None else str(value)

    def setData(self, index: _Index, value, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid() or role != Qt.ItemDataRole.EditRole:
            return False
        column = self.COLUMNS[index.column()]
        if column not in self.EDITABLE:
            return False
        run = self._rows[index.row()]
        if column == "tags":
            value = tuple(t.strip() for t in str(value).split(",") if t.strip())
            if value == run.tags:
                return False
        elif str(value) == (run.notes if column == "notes" else run.name):
            return False
        # The Store is the truth: the controller writes it and the change poll updates this row.
        self.edit_requested.emit(run.id, column, value)
        return True

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        name = self.COLUMNS[column]
        if name in self.SORTABLE:
            self.sort_requested.emit(name, order == Qt.SortOrder.DescendingOrder)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """A queued, running or recently finished job as the queue table shows it."""

    run: str
    name: str
    kind: str
    status: str
    priority: int | None
    device: str
    started: float | None
    finished: float | None
    done: int | None
    total: int | None
    stage: str | None
    error: str | None = None

    @property
    def fraction(self) -> float | None:
        if not self.total or self.done is None:
            return None
        return min(1.0, max(0.0, self.done / self.total))

    @classmethod
    def from_entry(cls, q: QueueEntry, stage: str | None = None) -> QueueRow:
        device = "CPU" if q.gpus == 0 or q.device_request == "cpu" else f"{q.gpus} GPU" + ("s" if q.gpus > 1 else "")
        return cls(q.run, q.name, q.kind, q.status, q.priority, device, None, None, None, None, stage)

    @classmethod
    def from_summary(cls, r: RunSummary) -> QueueRow:
        return cls(r.id, r.name, r.kind, r.status, r.priority, r.device or "", r.started, r.finished,
                   r.progress_done, r.progress_total, r.progress_stage, r.error)


class QueueModel(QAbstractTableModel):
    """The queue table; elapsed and time left move with the clock (time left from the shared estimate)."""

    HEADERS = ("Run", "Kind", "Status", "Progress", "Device", "Priority", "Elapsed", "Time left")
    PROGRESS_COLUMN = 3

    def __init__(self, parent=None, remaining: RemainingTime | None = None):
        super().__init__(parent)
        self._rows: list[QueueRow] = []
        self.remaining = remaining or RemainingTime()               # shared with the Run header
        self._waiting: dict[str, str] = {}                          # run -> why the scheduler holds it back

    def set_rows(self, rows: Sequence[QueueRow]) -> None:
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

    def row_at(self, row: int) -> QueueRow:
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
