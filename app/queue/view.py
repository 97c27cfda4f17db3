"""Queue: what runs now, what waits, and what just finished; cancel, resume, priorities, logs, folders."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ddae_core.rundir import LOG, RunStatus

from ..eta import RemainingTime
from ..formats import ID_ROLE
from ..logtail import LogDialog
from ..widgets.common import careful_question
from ..widgets.flow import FlowLayout
from .feed import FINAL_STATUSES, RECENT, QueueFeed, QueueLine
from .model import FRACTION_ROLE, QueueModel

log = logging.getLogger(__name__)

FINISHED_LINGER_S = 600     # a finished run stays this long unless "Show finished" is ticked


class ProgressDelegate(QStyledItemDelegate):
    """Draws the row's progress (FRACTION_ROLE) as a progress bar with the stage as its text."""

    def paint(self, painter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        fraction = index.data(FRACTION_ROLE)
        if fraction is None:
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = int(round(fraction * 1000))
        bar.text = f"{index.data() or ''}  {fraction:.0%}".strip()
        bar.textVisible = True
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


class QueueView(QWidget):
    """The queue table and its actions."""

    open_run = Signal(str)      # run id, on double-click

    def __init__(self, feed: QueueFeed | None, parent=None, remaining: RemainingTime | None = None):
        super().__init__(parent)
        self.feed = feed
        self.model = QueueModel(self, remaining)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(QueueModel.PROGRESS_COLUMN, ProgressDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.setShowGrid(False)
        # Names that share a long beginning (the bundled examples') differ at their end: keep both ends.
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        # Device is wide enough for a cluster job's "test job 99: RUNNING on vm, 0:44 of 10:00".
        for col, width in ((1, 80), (2, 90), (3, 240), (4, 330), (5, 70), (6, 80), (7, 80)):
            header.resizeSection(col, width)
        self.table.doubleClicked.connect(lambda ix: self.open_run.emit(ix.data(ID_ROLE)))
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.model.modelReset.connect(self._update_buttons)

        self.buttons: dict[str, QPushButton] = {}
        bar = FlowLayout()          # wraps in a narrow window rather than widening it
        for key, text, tip, slot in (
            ("cancel", "Cancel", "Stop the job (it saves a checkpoint) or take it out of the queue", self.cancel),
            ("resume", "Resume", "Queue a cancelled, failed or interrupted run again (train runs continue "
                                 "from their last checkpoint)", self.resume),
            ("raise", "Raise priority", "Run it sooner", lambda: self.shift_priority(+1)),
            ("lower", "Lower priority", "Run it later", lambda: self.shift_priority(-1)),
            ("log", "Open log", "Follow the job's log.txt", self.open_log),
            ("folder", "Open run folder", "Show the run's folder in the file manager", self.open_folder),
            ("view", "Show in Run view", "Curves, samples and grids of this run", self.show_run),
        ):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            self.buttons[key] = button
            bar.addWidget(button)
        self.show_finished = QCheckBox("Show finished")
        self.show_finished.setToolTip(f"Keep the last {RECENT} finished runs in the table; otherwise a run leaves "
                                      f"it {FINISHED_LINGER_S // 60} minutes after it ends")
        self.show_finished.toggled.connect(lambda _: self._show(self._rows))
        bar.addWidget(self.show_finished)
        self._rows: list[QueueLine] = []        # as the feed read them; the table shows _shown() of them
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.slots = QLabel()
        self.slots.setStyleSheet("color: #444; padding: 2px 4px;")
        self.slots.setWordWrap(True)
        self.empty = QLabel("The queue is empty. Launch a job, or try the demo from the Runs tab.")
        self.empty.setStyleSheet("color: #777; padding: 6px;")
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.slots)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)
        layout.addWidget(self.message)
        self._logs: list[LogDialog] = []
        self._update_buttons()

    # Feeding.
    def refresh(self) -> None:
        if self.feed is None:
            return
        try:
            rows = self.feed.rows()
        except Exception as exc:  # noqa: BLE001 - keep the old rows on a failed read
            log.warning("Reading the queue failed: %s", exc)
            return
        self.set_rows(rows)

    def set_rows(self, rows: list[QueueLine]) -> None:
        """Show these rows (read by the feed, on any thread), keeping the selection."""
        self._rows = list(rows)
        self._show(self._rows)

    def _shown(self, rows: list[QueueLine], now: float) -> list[QueueLine]:
        """The rows the table shows: live ones, and finished ones while recent or asked for."""
        if self.show_finished.isChecked():
            return rows
        return [r for r in rows if r.status not in FINAL_STATUSES or r.finished is None
                or now - r.finished < FINISHED_LINGER_S]

    def _show(self, rows: list[QueueLine]) -> None:
        shown = self._shown(rows, time.time())
        if shown == [self.model.row_at(i) for i in range(self.model.rowCount())]:
            return          # nothing changed (the clock's tick): the model's clocks refresh on their own
        selected = self.selected()
        self.model.set_rows(shown)
        self.empty.setVisible(not shown)
        if selected:
            self.select(selected)
        self._update_buttons()

    def set_tick(self, report) -> None:
        """The scheduler's TickReport: why each queued job waits."""
        self.model.set_waiting(dict(getattr(report, "waiting", ()) or ()))

    def set_slots(self, slots: list) -> None:
        """The scheduler's device slots (SlotState records) and who holds them."""
        if not slots:
            self.slots.setText("")
            return
        names = {self.model.row_at(i).run: self.model.row_at(i).name for i in range(self.model.rowCount())}
        parts = []
        for s in slots:
            if s.run is None:
                parts.append(f"<b>{s.id}</b> free")
                continue
            use = f"{s.utilisation:.0f}%" if s.utilisation is not None else ""
            mem = ""
            if s.memory_used_mb is not None:
                mem = f"{s.memory_used_mb / 1024:.1f} GB" if s.kind == "cpu" or not s.memory_total_mb \
                    else f"{s.memory_used_mb / 1024:.1f}/{s.memory_total_mb / 1024:.0f} GB"
            detail = ", ".join(p for p in (use, mem) if p)
            parts.append(f"<b>{s.id}</b> {names.get(s.run, s.run)}" + (f" ({detail})" if detail else ""))
        self.slots.setText("Slots: " + " · ".join(parts))

    def tick(self) -> None:
        """Once a second: clocks move, finished runs leave after a while, open logs follow their files."""
        self._show(self._rows)
        self.model.refresh_clock()
        for dialog in list(self._logs):
            if dialog.isVisible():
                dialog.poll()
            else:
                self._logs.remove(dialog)
                dialog.deleteLater()

    # Selection.
    def selected(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].data(ID_ROLE) if rows else None

    def select(self, run_id: str) -> bool:
        row = self.model.row_of(run_id)
        if row is None:
            return False
        self.table.selectRow(row)
        return True

    def _selected_row(self) -> QueueLine | None:
        run_id = self.selected()
        row = self.model.row_of(run_id) if run_id else None
        return self.model.row_at(row) if row is not None else None

    def _update_buttons(self, *_) -> None:
        row = self._selected_row()
        status = row.status if row else None
        self.buttons["cancel"].setEnabled(status in (RunStatus.QUEUED, RunStatus.RUNNING))
        self.buttons["resume"].setEnabled(status in (RunStatus.CANCELLED, RunStatus.FAILED, RunStatus.INTERRUPTED))
        self.buttons["raise"].setEnabled(status == RunStatus.QUEUED)
        self.buttons["lower"].setEnabled(status == RunStatus.QUEUED)
        for key in ("log", "folder", "view"):
            self.buttons[key].setEnabled(row is not None)

    # Actions.
    def _act(self, what: str, action: Callable[[str], object]) -> None:
        run_id = self.selected()
        if run_id is None or self.feed is None:
            return
        try:
            action(run_id)
        except Exception as exc:  # noqa: BLE001 - one sentence in the view, never a traceback
            self.say(f"Could not {what} {run_id}: {exc}", error=True)
            return
        self.say(f"{what.capitalize()}: {run_id}.")
        self.refresh()

    def cancel_box(self, row: QueueLine) -> QMessageBox:
        """Asked before cancelling a running job: it names the run; No is the default."""
        return careful_question(self, "Cancel a running job",
                                f"Cancel “{row.name}” ({row.run})? It saves a checkpoint and stops; Resume "
                                "continues it later.")

    def cancel(self) -> None:
        row = self._selected_row()
        if row is not None and row.status == RunStatus.RUNNING:
            box = self.cancel_box(row)
            answer = box.exec()
            if isinstance(box, QMessageBox):
                box.deleteLater()
            if int(getattr(answer, "value", answer)) != QMessageBox.StandardButton.Yes.value:
                self.say(f"Kept running: {row.name}.")
                return
        self._act("cancel", self.feed.cancel)

    def resume(self) -> None:
        self._act("resume", self.feed.resume)

    def shift_priority(self, delta: int) -> None:
        self._act("raise the priority of" if delta > 0 else "lower the priority of",
                  lambda run_id: self.feed.shift_priority(run_id, delta))

    def open_log(self) -> None:
        row = self._selected_row()
        if row is None or self.feed is None:
            return
        dialog = LogDialog(row.name, self.feed.run_dir(row.run) / LOG, self)
        dialog.show()
        self._logs.append(dialog)

    def open_folder(self) -> None:
        row = self._selected_row()
        if row is not None and self.feed is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.feed.run_dir(row.run))))

    def show_run(self) -> None:
        run_id = self.selected()
        if run_id:
            self.open_run.emit(run_id)

    def say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #c62828;" if error else "color: #555;")
        self.message.setText(text)
