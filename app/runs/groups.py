"""The group tree: runs grouped by settings in the database, each group row with n and mean ± std, min and max
of chosen metrics, expanding to its members, and each train member to its children (probe, FID, fine-tune).
Copies the group table as Markdown or LaTeX (db/paper_table.py)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QGuiApplication, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QTreeView, QVBoxLayout, QWidget

from ddae_core.rundir import MODEL_KINDS
from ddae_core.rundir.errors import UserError

from ..formats import ID_ROLE
from .feed import (
    METRICS,
    GroupRow,
    QueryError,
    RunsPager,
    baselines_text,
    latex,
    markdown,
    number_text,
    stat_text,
    value_text,
)

PLACEHOLDER = "…"
LOADED_ROLE = Qt.ItemDataRole.UserRole + 7       # on a group or train row: its children were read
GROUP_ROLE = Qt.ItemDataRole.UserRole + 8        # on a group row: its values


def names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


class GroupsPanel(QWidget):
    """Group-by and metrics fields, the tree, and the paper-table exports."""

    open_run = Signal(str)
    changed = Signal()          # the grouping or metrics changed (a saved view keeps them)

    def __init__(self, pager: RunsPager | None, parent=None):
        super().__init__(parent)
        self.pager = pager
        self.groups: list[GroupRow] = []
        self.by: list[str] = []
        self.metrics: list[str] = ["best"]
        self.live: Callable[[], None] | None = None     # asks the live hub's reader for the groups (RunsLab)
        self._shape: tuple | None = None                # the grouping, metrics and group values shown
        self.group_by = QLineEdit()
        self.group_by.setPlaceholderText("Group by, e.g. diffusion.n_T, model_type")
        self.group_by.returnPressed.connect(self.apply)
        self.metrics_edit = QLineEdit("best")
        self.metrics_edit.setPlaceholderText("Metrics: " + ", ".join(m for m, v in METRICS.items() if v.number))
        self.metrics_edit.returnPressed.connect(self.apply)
        self.error = QLabel()
        self.error.setStyleSheet("color: #c62828;")
        self.error.hide()
        self.model = QStandardItemModel(self)
        self.tree = QTreeView()
        self.tree.setModel(self.model)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.expanded.connect(self._expanded)
        self.tree.doubleClicked.connect(self._double_clicked)
        self.copy_markdown = QPushButton("Copy as Markdown")
        self.copy_markdown.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.markdown()))
        self.copy_latex = QPushButton("Copy as LaTeX")
        self.copy_latex.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.latex()))
        fields = QHBoxLayout()
        fields.addWidget(QLabel("Group by"))
        fields.addWidget(self.group_by, 2)
        fields.addWidget(QLabel("Metrics"))
        fields.addWidget(self.metrics_edit, 1)
        fields.addWidget(self.copy_markdown)
        fields.addWidget(self.copy_latex)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(fields)
        layout.addWidget(self.error)
        layout.addWidget(self.tree, 1)

    def set_grouping(self, by: list[str], metrics: list[str]) -> None:
        self.group_by.setText(", ".join(by))
        self.metrics_edit.setText(", ".join(metrics))
        self.apply()

    def apply(self) -> None:
        """Group by the fields' columns (nothing to group by: the tree is empty)."""
        by, metrics = names(self.group_by.text()), names(self.metrics_edit.text()) or ["best"]
        changed = (by, metrics) != (self.by, self.metrics)
        self.by, self.metrics = by, metrics
        self.reload()
        if changed:
            self.changed.emit()

    def reload(self) -> None:
        """Read the groups now, or, given `live`, ask the live hub's reader for them (they come to show_groups())."""
        if self.live is not None:
            self.live()                 # the reader learns of an empty grouping too: it stops reading groups
        if not self.by or self.pager is None:
            self.show_groups([])
        elif self.live is None:
            try:
                self.show_groups(self.pager.groups(self.by, self.metrics))
            except (QueryError, UserError) as exc:
                self.show_groups([], str(exc).splitlines()[0])

    def show_groups(self, groups: list[GroupRow], problem: str | None = None) -> None:
        """Show these groups (of the current grouping); the same groups as shown are updated in place, so the
        expanded ones stay open while runs stream."""
        self._say(problem)
        shape = (self.by, self.metrics, [g.values for g in groups])
        if problem is None and groups and shape == self._shape:
            for r, group in enumerate(groups):
                cells = self._cells(group)
                moved = [c for c, text in enumerate(cells) if self.model.item(r, c).text() != text]
                for c in moved:
                    self.model.item(r, c).setText(cells[c])
                if moved:       # its members are read again when next expanded
                    self.model.item(r, 0).setData(False, LOADED_ROLE)
            self.groups = groups
            return
        self.model.clear()
        self.groups, self._shape = ([], None) if problem else (groups, shape)
        if not self.groups:
            return
        headers = [" / ".join(self.by), "n"]
        for m in self.metrics:
            headers += [f"{METRICS[m].label}: mean ± std", "min – max"]
        self.model.setHorizontalHeaderLabels([*headers, "Protocol", "Baselines: pixels / random init"])
        for group in self.groups:
            row = [QStandardItem(c) for c in self._cells(group)]
            row[0].setData(group.values, GROUP_ROLE)
            row[0].appendRow([QStandardItem(PLACEHOLDER)])
            self.model.appendRow(row)
        for column in range(self.model.columnCount()):
            self.tree.resizeColumnToContents(column)

    def _cells(self, group: GroupRow) -> list[str]:
        cells = [", ".join(f"{k} = {value_text(v)}" for k, v in zip(self.by, group.values)), str(group.n)]
        for m in self.metrics:
            stats = group.stats[m]
            cells += [stat_text(m, stats), f"{number_text(m, stats.min)} – {number_text(m, stats.max)}"]
        return [*cells, ", ".join(group.protocols) or "—", baselines_text(group)]

    def _say(self, sentence: str | None) -> None:
        self.error.setText(sentence or "")
        self.error.setVisible(sentence is not None)

    def _expanded(self, index: QModelIndex) -> None:
        item = self.model.itemFromIndex(index.siblingAtColumn(0))
        if item is None or item.data(LOADED_ROLE) or self.pager is None:
            return
        item.setData(True, LOADED_ROLE)
        values = item.data(GROUP_ROLE)
        runs = self.pager.members(self.by, values) if values is not None else self.pager.children(item.data(ID_ROLE))
        item.removeRows(0, item.rowCount())
        numbers = self.pager.column_values(runs, self.metrics)
        for run in runs:
            row = [QStandardItem(f"{run.name}  ({run.kind}, {run.status})"), QStandardItem("")]
            for m in self.metrics:
                value = numbers.get(run.id, {}).get(m)
                row += [QStandardItem(number_text(m, value) if isinstance(value, (int, float)) else "—"),
                        QStandardItem("")]
            row[0].setData(run.id, ID_ROLE)
            if run.kind in MODEL_KINDS:
                row[0].appendRow([QStandardItem(PLACEHOLDER)])
            item.appendRow(row)

    def _double_clicked(self, index: QModelIndex) -> None:
        run_id = index.siblingAtColumn(0).data(ID_ROLE)
        if run_id:
            self.open_run.emit(run_id)

    def member_ids(self, group: int) -> list[str]:
        """The run ids shown under group row `group` (after it was expanded)."""
        item = self.model.item(group, 0)
        return [item.child(r, 0).data(ID_ROLE) for r in range(item.rowCount()) if item.child(r, 0).data(ID_ROLE)]

    def markdown(self) -> str:
        return markdown(self.groups, self.by, self.metrics)

    def latex(self) -> str:
        return latex(self.groups, self.by, self.metrics)
