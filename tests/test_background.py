"""app.background: work off the GUI thread, results on it, stop that waits, and the newest-request mailbox."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QThread

from app.background import Latest, Worker, running_workers
from tests.app_support import no_leftovers  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("no_leftovers")

WAIT_MS = 10_000


def test_delivered_values_arrive_on_the_gui_thread(qtbot):
    got = []
    worker = Worker("test-deliver", lambda w: [w.deliver(i) for i in range(3)])
    worker.delivered.connect(lambda value: got.append((value, QThread.currentThread() is worker.thread())))
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        worker.start()
    qtbot.waitUntil(lambda: len(got) == 3, timeout=WAIT_MS)
    assert got == [(0, True), (1, True), (2, True)]
    assert worker not in running_workers()


def test_stop_wakes_a_pausing_loop_and_drops_late_results(qtbot):
    ticks, got = [], []
    worker = Worker("test-every", lambda w: w.every(60.0, lambda: (ticks.append(1), w.deliver(len(ticks))), "tick"))
    worker.delivered.connect(got.append)
    worker.start()
    qtbot.waitUntil(lambda: bool(ticks), timeout=WAIT_MS)
    assert worker.stop(WAIT_MS)                     # not 60 s: stop ends the pause
    worker.deliver("late")
    qtbot.wait(50)
    assert "late" not in got and not worker.isRunning()


def test_a_failing_tick_keeps_the_loop_and_a_failing_work_says_why(qtbot, monkeypatch):
    from app import background

    logged = []     # logging from a QThread would leave a threading._DummyThread behind
    monkeypatch.setattr(background.log, "exception", lambda message, *args: logged.append(message % args))
    ticks = []

    def tick():
        ticks.append(1)
        raise RuntimeError("disk gone")

    looping = Worker("test-failing-tick", lambda w: w.every(0.01, tick, "tick failed"))
    looping.start()
    qtbot.waitUntil(lambda: len(ticks) >= 3, timeout=WAIT_MS)
    assert looping.stop(WAIT_MS)

    def broken(worker):
        raise ValueError("bad input")

    failing = Worker("test-failing-work", broken)
    with qtbot.waitSignal(failing.failed, timeout=WAIT_MS) as blocker:
        failing.start()
    assert failing.wait(WAIT_MS)
    assert blocker.args == ["test-failing-work stopped: ValueError: bad input"]
    assert logged[:3] == ["tick failed"] * 3 and logged[-1] == "Background work 'test-failing-work' failed"


def test_latest_keeps_only_the_newest_request_and_ends_an_idle_loop():
    box: Latest[int] = Latest()
    assert box.put(1) is True                       # no loop yet: start one
    assert box.put(2) is False                      # the loop (about to run) takes the newest only
    assert box.waiting() == 2 and box.take(1.0) == 2
    assert box.take(0.01) is None                   # idle: the loop ends ...
    assert box.put(3) is True                       # ... and the next request starts another
    box.close()
    assert box.take(1.0) is None and box.put(4) is False and box.closed


def test_latest_wakes_a_waiting_taker():
    box: Latest[str] = Latest()
    box.put("first")
    assert box.take(1.0) == "first"
    taken = []
    taker = threading.Thread(target=lambda: taken.append(box.take(10.0)))
    taker.start()
    box.put("second")
    taker.join(10)
    assert taken == ["second"]


def test_running_workers_skips_a_worker_deleted_with_its_parent(qtbot):
    """A closed window's worker may outlive its Qt object as a Python wrapper until garbage collection."""
    from PySide6.QtCore import QObject

    parent = QObject()
    orphan = Worker("orphan", lambda worker: None, parent=parent)
    del parent                          # deletes the Qt object; `orphan` still holds its wrapper
    assert running_workers() == [] and orphan is not None
