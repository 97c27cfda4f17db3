"""The Queue view's rows and its Cancel question, and run names told apart in a narrow window."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.queue.feed import QueueLine
from app.queue.view import FINISHED_LINGER_S, QueueView
from db import testing as fake
from tests.app_support import answer_next_box, press


def _row(run: str, status: str, finished: float | None = None, name: str | None = None) -> QueueLine:
    return QueueLine(run, name or run, "train", status, None, "CPU", None, finished, None, None, None)


class _Feed:
    """The view's one door to the queue's actions, recording the cancels it is asked for."""

    def __init__(self, rows: list[QueueLine]):
        self.cancelled: list[str] = []
        self._rows = rows

    def cancel(self, run_id: str) -> None:
        self.cancelled.append(run_id)

    def rows(self) -> list[QueueLine]:
        return self._rows


def test_finished_runs_leave_the_queue_after_a_while_unless_shown(qtbot):
    view = QueueView(None)
    qtbot.addWidget(view)
    now = time.time()
    view.set_rows([_row("live", "running"), _row("just", "done", now - 60),
                   _row("old", "failed", now - FINISHED_LINGER_S - 60)])

    def shown() -> list[str]:
        return [view.model.row_at(i).run for i in range(view.model.rowCount())]

    assert shown() == ["live", "just"]
    view.show_finished.setChecked(True)
    assert shown() == ["live", "just", "old"]
    view.show_finished.setChecked(False)
    assert shown() == ["live", "just"]
    # One that finishes now leaves with the clock, without a new read of the queue.
    view.set_rows([_row("live", "done", time.time() - FINISHED_LINGER_S + 0.5)])
    assert shown() == ["live"]
    qtbot.waitUntil(lambda: (view.tick(), shown())[1] == [], timeout=5_000)
    assert view.empty.isVisibleTo(view)


def test_cancel_on_a_running_job_asks_naming_the_run(qtbot):
    feed = _Feed([_row("20261126-130000-train-0001", "running", name="long A"),
                  _row("20261126-130000-train-0002", "queued", name="long B")])
    view = QueueView(feed)
    qtbot.addWidget(view)
    view.refresh()
    assert view.select("20261126-130000-train-0001")
    asked = answer_next_box(qtbot, press(QMessageBox.StandardButton.No))
    view.cancel()
    assert asked == ["Cancel “long A” (20261126-130000-train-0001)? It saves a checkpoint and stops; Resume "
                     "continues it later."]
    assert feed.cancelled == [] and "Kept running: long A" in view.message.text()
    asked = answer_next_box(qtbot, lambda box: qtbot.keyClick(box, Qt.Key.Key_Escape))
    view.cancel()
    assert asked and feed.cancelled == []
    asked = answer_next_box(qtbot, press(QMessageBox.StandardButton.Yes))
    view.cancel()
    assert asked and feed.cancelled == ["20261126-130000-train-0001"]
    # A queued job leaves the queue without a question.
    assert view.select("20261126-130000-train-0002")
    view.cancel()
    assert feed.cancelled[-1] == "20261126-130000-train-0002"


BUNDLED = ("example: tiny-ddpm trained 225 minutes on builtin:shapes (31,119 steps: 12,795, then 18,324 more "
           "from those weights; one CPU thread)")


def test_run_names_that_share_a_long_start_are_told_apart_at_1280_px(qtbot, tmp_path):
    from app.runs.feed import RunsPager
    from app.runs.view import RunsView
    from db import Ingester, Store

    ws = tmp_path / "ws"
    names = {fake.run_id("train", 1): BUNDLED + ", earlier stage", fake.run_id("train", 2): BUNDLED}
    for rid, name in names.items():
        fake.write_run(ws, rid, name=name, events=fake.training_events(20))
    store = Store.open(ws)
    try:
        ingester = Ingester(store, ws)
        ingester.acquire()
        try:
            ingester.ingest_once()
        finally:
            ingester.release()
        view = RunsView(RunsPager(store))
        qtbot.addWidget(view)
        view.resize(1280, 800)
        view.show()
        view.reload()
        qtbot.waitUntil(lambda: view.model.rowCount() == 2, timeout=5_000)
        width = view.table.columnWidth(0) - 8           # the cell's text margins
        shown = {}
        for row in range(2):
            index = view.model.index(row, 0)
            text = index.data()
            shown[view.model.run_at(row).id] = view.table.fontMetrics().elidedText(
                text, view.table.textElideMode(), width)
            assert index.data(Qt.ItemDataRole.ToolTipRole) == f"{names[view.model.run_at(row).id]}\n" \
                                                              f"{view.model.run_at(row).id}"
        assert all("…" in text for text in shown.values())          # too long for the column ...
        assert len(set(shown.values())) == 2, shown                  # ... yet each reads differently
    finally:
        store.close()
