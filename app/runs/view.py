"""Runs: every run of the workspace as one sortable, filterable table, paged in the database.

A page is one indexed query of summary columns (best probe accuracy and last loss are stored on
the run's row), so 10,000 runs draw as fast as 10; no curve is read to draw the table.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QEvent, QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ddae_core.rundir import ACTIVE_STATUSES, MODEL_KINDS, JobKind
from ddae_core.rundir.errors import UserError

from ..formats import ID_ROLE
from ..live import LiveHub
from ..widgets.common import careful_question
from .feed import STATUSES, Changes, RunsPager, RunSummary
from .lab import RunsLab
from .model import RunTableModel

log = logging.getLogger(__name__)

UNDO_S = 10                     # a deleted run's folder stays this long, so Undo can bring it back


class RunsView(QWidget):
    """Filter bar, the table, paging, and the actions on selected runs."""

    open_run = Signal(str)          # double-click or "Open"
    compare = Signal(list)          # run ids, two or more
    evaluate = Signal(str, str)     # job kind, parent run id
    launch_like = Signal(str)       # run id: the Launch form filled from its spec

    def __init__(self, pager: RunsPager | None, hub: LiveHub | None = None, parent=None):
        """hub: the window's live hub; the lab's column values and groups are then read on its thread."""
        super().__init__(parent)
        self.pager = pager
        self.hub = hub
        self.model = RunTableModel(self)
        self.model.sort_requested.connect(self._sort)
        self.model.edit_requested.connect(self._edit)
        self._dirty = False
        self._trash: dict[str, str] = {}       # run id -> name: deleted, hidden, removed when the timer ends
        self._trash_timer = QTimer(self)
        self._trash_timer.setSingleShot(True)
        self._trash_timer.timeout.connect(self.empty_trash)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search names, ids, tags, notes, data…")
        self.search.setClearButtonEnabled(True)
        self.kind = QComboBox()
        self.kind.addItem("All kinds", None)
        for kind in JobKind:
            self.kind.addItem(kind.value, kind.value)
        self.status = QComboBox()
        self.status.addItem("Any status", None)
        for status in STATUSES:
            self.status.addItem(status.value, status.value)
        self.tag = QLineEdit()
        self.tag.setPlaceholderText("Tag")
        self.tag.setMaximumWidth(140)
        self._search_timer = QTimer(self)      # typing refilters once the user pauses
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(250)
        self._search_timer.timeout.connect(self._filter)
        self.search.textChanged.connect(self._search_timer.start)
        self.tag.textChanged.connect(self._search_timer.start)
        self.kind.currentIndexChanged.connect(self._filter)
        self.status.currentIndexChanged.connect(self._filter)
        filters = QHBoxLayout()
        filters.addWidget(self.search, 3)
        filters.addWidget(self.kind)
        filters.addWidget(self.status)
        filters.addWidget(self.tag)
        self.query = QLineEdit()
        self.query.setPlaceholderText("Query, then Enter: diffusion.n_T <= 256 and best > 0.8 or tag:baseline")
        self.query.setToolTip("Names: kind, status, name, best, loss, created, tag:X and any spec key (lr, "
                              "diffusion.n_T); = != < <= > >=, in 0.8..0.9, in (train, probe), and, or, not, ( )")
        self.query.setClearButtonEnabled(True)
        self.query.returnPressed.connect(self._query)
        self.query.textChanged.connect(lambda text: text.strip() or self._query())    # cleared: every run
        self.query_error = QLabel()
        self.query_error.setStyleSheet("color: #c62828;")
        self.query_error.hide()

        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        # Double-click opens a run (or edits its tags and notes); F2 or the menu renames it.
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.installEventFilter(self)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setWordWrap(False)
        # Names that share a long beginning (the bundled examples') differ at their end: keep both ends.
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        for col, width in zip(range(len(RunTableModel.COLUMNS)), (260, 100, 100, 170, 110, 80, 120, 180, 125)):
            header.resizeSection(col, width)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(self._double_clicked)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._menu)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.lab = RunsLab(self)        # setting columns, groups, parallel coordinates, saved views

        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Show the run in the Run view (Enter, or double-click it; F2 renames it)")
        self.open_button.clicked.connect(self._open_selected)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Overlay the selected runs (select two or more)")
        self.compare_button.clicked.connect(lambda: self.compare.emit(self.selected()))
        self.probe_button = QPushButton("Probe grid…")
        self.probe_button.setToolTip("Launch a layer x noise probe grid on the selected train run")
        self.probe_button.clicked.connect(lambda: self._evaluate(JobKind.PROBE))
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setToolTip("Delete the selected runs and their folders (Delete; Undo for a few seconds)")
        self.delete_button.clicked.connect(self._delete_selected)
        self.prev_button = QPushButton("‹ Previous")
        self.next_button = QPushButton("Next ›")
        self.prev_button.clicked.connect(lambda: self._turn(-1))
        self.next_button.clicked.connect(lambda: self._turn(+1))
        self.count = QLabel()
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Bring back the runs just deleted")
        self.undo_button.clicked.connect(self.undo_delete)
        self.undo_button.hide()
        actions = QHBoxLayout()
        for w in (self.open_button, self.compare_button, self.probe_button, self.delete_button):
            actions.addWidget(w)
        actions.addWidget(self.message, 1)
        actions.addWidget(self.undo_button)
        actions.addWidget(self.count)
        actions.addWidget(self.prev_button)
        actions.addWidget(self.next_button)

        self.banner_slot = QVBoxLayout()       # the first-run demo offer goes here
        layout = QVBoxLayout(self)
        layout.addLayout(self.banner_slot)
        layout.addLayout(filters)
        layout.addWidget(self.query)
        layout.addWidget(self.query_error)
        layout.addWidget(self.lab.bar)
        layout.addWidget(self.lab.splitter, 1)
        layout.addLayout(actions)
        # Last: turning sorting on asks the model to sort, which reloads through the widgets above.
        self.table.horizontalHeader().setSortIndicator(RunTableModel.COLUMNS.index("created"),
                                                       Qt.SortOrder.DescendingOrder)
        self.table.setSortingEnabled(True)
        self._update_buttons()
        self.lab.restore_last()

    # Loading.
    def reload(self) -> None:
        if self.pager is None:
            return
        keep = set(self.selected())
        try:
            rows = self.pager.page()
        except Exception as exc:  # noqa: BLE001 - keep the table; say why it is stale
            self.say(f"Could not read the runs: {exc}", error=True)
            return
        shown = [r for r in rows if r.id not in self._trash]
        self.model.set_rows(shown)
        self._dirty = False
        p = self.pager
        first = p.offset + 1 if shown else 0
        total = p.total - (len(rows) - len(shown))
        self.count.setText(f"{first}–{p.offset + len(shown)} of {total:,}" if shown else "no runs")
        self.prev_button.setEnabled(p.offset > 0)
        self.next_button.setEnabled(p.offset + len(rows) < p.total)
        if keep:
            self._reselect(keep)
        self.lab.after_reload()
        self._update_buttons()

    def apply(self, changes: Changes) -> None:
        """Rows on this page change in place; a new or deleted run reloads the page once a second at most."""
        if self.pager is None:
            return
        if changes.full:
            self.reload()
            return
        missing = self.model.update_rows(changes.runs)
        if self.hub is None and changes.runs and len(missing) < len(changes.runs):
            self.lab.refresh_values()           # a shown run's metrics (a new FID, a probe) may have moved
        p = self.pager
        if any((p.kind in (None, r.kind)) and (p.status in (None, r.status)) for r in missing) \
                or any(self.model.row_of(d) is not None for d in changes.deleted):
            self._dirty = True

    def tick(self) -> None:
        # Not while a tag or note is being typed: a reload would close the editor.
        if self._dirty and self.table.state() != QAbstractItemView.State.EditingState:
            self.reload()

    # Selection.
    def selected(self) -> list[str]:
        return [ix.data(ID_ROLE) for ix in self.table.selectionModel().selectedRows()]

    def select(self, run_ids: list[str]) -> None:
        self.table.clearSelection()
        self._reselect(set(run_ids))

    def _reselect(self, run_ids: set[str]) -> None:
        selection = self.table.selectionModel()
        for run_id in run_ids:
            row = self.model.row_of(run_id)
            if row is not None:
                selection.select(self.model.index(row, 0), QItemSelectionModel.SelectionFlag.Select
                                 | QItemSelectionModel.SelectionFlag.Rows)

    def _update_buttons(self, *_) -> None:
        ids = self.selected()
        runs = [self.model.run_at(r) for r in (self.model.row_of(i) for i in ids) if r is not None]
        self.open_button.setEnabled(len(ids) == 1)
        self.compare_button.setEnabled(len(ids) >= 2)
        self.probe_button.setEnabled(len(runs) == 1 and runs[0].kind in MODEL_KINDS)
        self.delete_button.setEnabled(bool(runs) and all(r.status not in ACTIVE_STATUSES for r in runs))

    # Actions.
    def _filter(self) -> None:
        if self.pager is None:
            return
        p = self.pager
        p.search = self.search.text().strip() or None
        p.tag = self.tag.text().strip() or None
        p.kind = self.kind.currentData()
        p.status = self.status.currentData()
        p.offset = 0
        self.reload()

    def _query(self) -> None:
        self.apply_query(self.query.text())

    def apply_query(self, text: str) -> None:
        if self.pager is None:
            return
        mistake = self.pager.set_where(text)
        self.query_error.setText(mistake or "")
        self.query_error.setVisible(mistake is not None)
        if mistake is None:
            self.reload()

    def _sort(self, order_by: str, descending: bool) -> None:
        if self.pager is not None:
            self.pager.order_by, self.pager.descending, self.pager.offset = order_by, descending, 0
            self.reload()

    def _turn(self, pages: int) -> None:
        if self.pager is not None:
            self.pager.offset = max(0, self.pager.offset + pages * self.pager.page_size)
            self.reload()

    def _edit(self, run_id: str, column: str, value) -> None:
        try:
            self.pager.edit(run_id, column, value)
        except (ValueError, LookupError) as exc:
            self.say(str(exc), error=True)
            return
        self.say(f"Saved the {column} of {run_id}.")

    def _double_clicked(self, index) -> None:
        if self.model.column_names()[index.column()] in ("tags", "notes"):
            self.table.edit(index)
        else:
            self.open_run.emit(index.data(ID_ROLE))

    def eventFilter(self, watched, event) -> bool:
        """Enter opens the current run and Delete deletes the selected ones (not while a cell is edited)."""
        if watched is self.table and event.type() == QEvent.Type.KeyPress \
                and self.table.state() != QAbstractItemView.State.EditingState \
                and event.modifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier):
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._open_selected()
                return True
            if event.key() == Qt.Key.Key_Delete:
                if self.delete_button.isEnabled():
                    self._delete_selected()
                elif self.selected():
                    self.say("A running or queued run cannot be deleted; cancel it in Queue first.", error=True)
                return True
        return super().eventFilter(watched, event)

    def _rename_selected(self) -> None:
        ids = self.selected()
        row = self.model.row_of(ids[0]) if ids else None
        if row is not None:
            self.table.edit(self.model.index(row, RunTableModel.COLUMNS.index("name")))

    def _open_selected(self) -> None:
        ids = self.selected()
        if ids:
            self.open_run.emit(ids[0])

    def _evaluate(self, kind: str) -> None:
        ids = self.selected()
        if ids:
            self.evaluate.emit(kind, ids[0])

    def delete_question(self, runs: list[RunSummary]) -> QMessageBox:
        """The confirmation for deleting `runs`: it names them, and No is the default."""
        names = [f"“{r.name or r.id}”" for r in runs]
        what = names[0] if len(names) == 1 else (f"{len(names)} runs ({', '.join(names[:3])}"
                                                 f"{', …' if len(names) > 3 else ''})")
        return careful_question(self, "Delete runs",
                                f"Delete {what} and {'its folder' if len(names) == 1 else 'their folders'} "
                                f"(checkpoints, samples, logs)? You can undo it for {UNDO_S} seconds.")

    def _delete_selected(self) -> None:
        ids = self.selected()
        runs = [self.model.run_at(r) for r in (self.model.row_of(i) for i in ids) if r is not None]
        if not runs or self.pager is None:
            return
        if self.delete_question(runs).exec() != QMessageBox.StandardButton.Yes:
            return
        self.empty_trash()                      # an earlier deletion is final once another one starts
        self._trash = {r.id: r.name or r.id for r in runs}
        self._trash_timer.start(UNDO_S * 1000)
        self.reload()
        names = list(self._trash.values())
        what = f"“{names[0]}”" if len(names) == 1 else f"{len(names)} runs"
        self.say(f"Deleted {what}; Undo brings {'it' if len(names) == 1 else 'them'} back for {UNDO_S} seconds.")
        self.undo_button.show()

    def undo_delete(self) -> None:
        """Bring back the runs deleted in the last few seconds (their folders were never touched)."""
        if not self._trash:
            return
        names = list(self._trash.values())
        self._trash_timer.stop()
        self._trash = {}
        self.undo_button.hide()
        self.reload()
        self.say(f"Restored {'“' + names[0] + '”' if len(names) == 1 else f'{len(names)} runs'}.")

    def empty_trash(self) -> None:
        """Delete for good the runs waiting in the undo period (the timer, or the workspace closing)."""
        self._trash_timer.stop()
        trash, self._trash = self._trash, {}
        self.undo_button.hide()
        if not trash or self.pager is None:
            return
        failed = False
        for run_id in trash:
            try:
                self.pager.delete(run_id)
            except (ValueError, LookupError, OSError) as exc:
                self.say(f"Could not delete {run_id}: {exc}", error=True)
                failed = True
        if not failed and self.message.text().startswith("Deleted"):
            self.message.clear()
        self.reload()

    def _menu(self, pos) -> None:
        ids = self.selected()
        if not ids:
            return
        menu = QMenu(self)
        menu.addAction("Open in Run view", self._open_selected).setEnabled(len(ids) == 1)
        menu.addAction("Rename", self._rename_selected).setEnabled(len(ids) == 1)
        menu.addAction("Compare", lambda: self.compare.emit(self.selected())).setEnabled(len(ids) >= 2)
        menu.addAction("Launch like this…", lambda: self.launch_like.emit(self.selected()[0])).setEnabled(len(ids) == 1)
        menu.addSeparator()
        for kind, text in ((JobKind.PROBE, "Probe grid…"), (JobKind.ALIGN_UNIFORM, "Alignment and uniformity…"),
                           (JobKind.NOISY_CLASSIFIER, "Noise-conditional classifier…"),
                           (JobKind.FINETUNE, "Fine-tune…"), (JobKind.SAMPLE, "Sample images…")):
            menu.addAction(text, lambda k=kind: self._evaluate(k)).setEnabled(len(ids) == 1)
        menu.addAction("Copy README table row", self._copy_readme_row).setEnabled(len(ids) == 1)
        menu.addSeparator()
        menu.addAction("Delete…", self._delete_selected).setEnabled(self.delete_button.isEnabled())
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def _copy_readme_row(self) -> None:
        """The best-probe vs best-FID checkpoints of the selected run, as a row of the official README's table."""
        ids = self.selected()
        try:
            row = self.pager.readme_row(ids[0]) if ids and self.pager else ""
        except (UserError, LookupError) as exc:
            self.say(str(exc), error=True)
            return
        QGuiApplication.clipboard().setText(row)
        self.say("Copied the README table row (HTML, steps for the README's epochs).")

    def say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #c62828;" if error else "color: #555;")
        self.message.setText(text)
