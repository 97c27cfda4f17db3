"""The run table's Qt model: a thin adapter over one page of the Store's RunSummary records.

It never queries the database. The view hands it records; edits leave through a signal so the
view's feed writes them to the Store and the next change poll brings them back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor

from ddae_core.engine.evaluation import protocols
from ddae_core.rundir import RunStatus

from ..formats import ID_ROLE, STATUS_COLORS, when
from ..widgets.rows import format_value
from .feed import METRICS, RunSummary, number_text

_Index = QModelIndex | QPersistentModelIndex


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
        self._extra: list[str] = []                     # setting and metric columns after the fixed ones
        self._sections: dict[str, str] = {}             # extra column -> its section (network, ..., metrics)
        self._values: dict[str, dict] = {}              # run id -> {extra column: value}
        self.collapsed: set[str] = set()                # sections shown as their first column only

    # Columns.
    def column_names(self) -> list[str]:
        return [*self.COLUMNS, *self._extra]

    def extra_columns(self) -> list[str]:
        return list(self._extra)

    def set_columns(self, columns: list[str], sections: dict[str, str]) -> None:
        """Show these setting and metric columns after the fixed ones (values come with set_values)."""
        if columns == self._extra and all(self._sections.get(c) == sections.get(c) for c in columns):
            return
        self.beginResetModel()
        self._extra = list(columns)
        self._sections = {c: sections.get(c, "metrics" if c in METRICS else "") for c in columns}
        self.endResetModel()

    def set_values(self, values: dict[str, dict]) -> None:
        self._values = values
        if self._rows and self._extra:
            self.dataChanged.emit(self.index(0, len(self.COLUMNS)),
                                  self.index(len(self._rows) - 1, self.columnCount() - 1))

    def section_of(self, column: int) -> str:
        names = self.column_names()
        return self._sections.get(names[column], "") if column < len(names) else ""

    def section_columns(self, section: str) -> list[int]:
        return [len(self.COLUMNS) + i for i, c in enumerate(self._extra) if self._sections.get(c) == section]

    def extra_header(self, column: str) -> str:
        """`diffusion` over `n_T`: a setting's section above its key (the section's prefix left out)."""
        section = self._sections.get(column, "")
        if column in METRICS:
            return f"metrics\n{METRICS[column].label}"
        key = column[len(section) + 1:] if column.startswith(section + ".") else column
        return f"{section}\n{key}"

    # Feeding.
    def set_rows(self, rows: Sequence[RunSummary]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._row_of = {r.id: i for i, r in enumerate(self._rows)}
        self.endResetModel()

    def update_rows(self, rows: Iterable[RunSummary]) -> list[RunSummary]:
        """Replace rows already shown, in place; returns the runs this page does not show."""
        missing = []
        last = self.columnCount() - 1
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
        return 0 if parent.isValid() else len(self.COLUMNS) + len(self._extra)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal:
            return None
        if section >= len(self.COLUMNS):
            column = self._extra[section - len(self.COLUMNS)]
            group = self._sections.get(column, "")
            if role == Qt.ItemDataRole.DisplayRole:
                if group in self.collapsed:
                    return f"▸ {group}\n({len(self.section_columns(group))} columns)"
                return self.extra_header(column)
            if role == Qt.ItemDataRole.ToolTipRole:
                return f"{column} ({group}); right-click the header to collapse or expand its section"
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        base = super().flags(index)
        if index.isValid() and index.column() < len(self.COLUMNS) and self.COLUMNS[index.column()] in self.EDITABLE:
            base |= Qt.ItemFlag.ItemIsEditable
        return base

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        run = self._rows[index.row()]
        if role == ID_ROLE:
            return run.id
        if index.column() >= len(self.COLUMNS):
            return self._extra_data(run, self._extra[index.column() - len(self.COLUMNS)], role)
        column = self.COLUMNS[index.column()]
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

    def _extra_data(self, run: RunSummary, column: str, role: int):
        value = self._values.get(run.id, {}).get(column)
        if role == Qt.ItemDataRole.DisplayRole:
            return column_text(column, value)
        if role == Qt.ItemDataRole.TextAlignmentRole and isinstance(value, (int, float)):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return value
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
        if not index.isValid() or role != Qt.ItemDataRole.EditRole or index.column() >= len(self.COLUMNS):
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
        name = self.column_names()[column]
        if name in self.SORTABLE or column >= len(self.COLUMNS):
            self.sort_requested.emit(name, order == Qt.SortOrder.DescendingOrder)


def column_text(column: str, value) -> str:
    """A setting or metric cell: metrics as the paper's tables write them, settings as they are."""
    if value is None:
        return ""
    if column in METRICS and isinstance(value, (int, float)):
        return number_text(column, value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return format_value(value)
