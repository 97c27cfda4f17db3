"""Queue and lifecycle: cancel from the Queue view, reopening a workspace, a scheduler held elsewhere."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from PySide6.QtWidgets import QMessageBox

from app import workspace as workspaces
from app.run.panels import TrainingPanel
from db import testing as fake
from tests.app_support import (  # noqa: F401
    MICRO_DATA,
    answer_next_box,
    app_settings,
    micro_overrides,
    no_leftovers,
    press,
    studio,
    wait_status,
)

WRITER = """
import os, socket, sys, time
from db import testing as T
run_dir, n, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
T.append(run_dir, [T.status("running", time.time(), pid=os.getpid(), host=socket.gethostname(), device="cpu")])
for step in range(1, n + 1):
    now = time.time()
    T.append(run_dir, [T.metric("loss/train", step, 1.0 / step, now), T.progress(step, n, "train", now)])
    time.sleep(pause)
T.append(run_dir, [T.status("done", time.time())])
"""


def start_writer(run_dir, n: int, pause: float) -> subprocess.Popen:
    """A stand-in worker (no torch): appends a loss point every `pause` seconds, then `done`."""
    return subprocess.Popen([sys.executable, "-c", WRITER, str(run_dir), str(n), str(pause)],
                            cwd=str(Path(__file__).resolve().parents[1]), start_new_session=True)


def _queue_long_job(window, name: str) -> str:
    form = window.launch_view.form("train")
    form.set_values(name=name, data=MICRO_DATA, steps="5000", batch_size="8", device="cpu",
                    checkpoint_every_steps="1000", sample_every_steps="1000", overrides=micro_overrides())
    run_id = form.submit()
    assert run_id is not None, form.message.text()
    return run_id


@pytest.mark.slow
def test_cancel_works_from_the_queue(studio, qtbot):
    window = studio()
    running = _queue_long_job(window, "long A")
    waiting = _queue_long_job(window, "long B")        # one CPU slot: B waits behind A
    view = window.queue_view
    window.tabs.setCurrentWidget(view)
    assert wait_status(qtbot, window, running, ("running",), 30) == "running"
    qtbot.waitUntil(lambda: view.model.row_of(waiting) is not None, timeout=5000)

    def progress(run: str) -> str:
        row = view.model.row_of(run)
        return "" if row is None else view.model.data(view.model.index(row, 3))

    qtbot.waitUntil(lambda: "free CPU slot" in progress(waiting), timeout=5000)      # why B waits

    # A queued job leaves the queue at once.
    assert view.select(waiting)
    assert view.buttons["cancel"].isEnabled() and not view.buttons["resume"].isEnabled()
    view.buttons["cancel"].click()
    assert window.store.get_run(waiting).status == "cancelled"
    assert waiting not in [q.run for q in window.store.queued_jobs()]

    # A running job is asked to stop once it trains (a loss point is in), saves and ends cancelled.
    qtbot.waitUntil(lambda: bool(window.store.summaries(running)), timeout=60_000)
    assert view.select(running)
    asked = answer_next_box(qtbot, press(QMessageBox.StandardButton.Yes))     # it asks, naming the run
    view.buttons["cancel"].click()
    assert asked and asked[0].startswith(f"Cancel “long A” ({running})?")
    assert "Cancel" in view.message.text()
    assert wait_status(qtbot, window, running, ("cancelled", "interrupted", "failed"), 60) == "cancelled"
    qtbot.waitUntil(lambda: view.model.row_at(view.model.row_of(running)).status == "cancelled", timeout=5000)
    assert (window.store.run_dir(running) / "checkpoints").is_dir()
    assert view.select(running) and view.buttons["resume"].isEnabled()

    # Its log opens in a window that follows the file.
    view.buttons["log"].click()
    log = view._logs[-1]
    text = log.tail.toPlainText()
    assert "ddae_core.worker" in text
    # The worker's own lines: what it does, the cancel asked for here, and a summary at the end.
    assert "running (device" in text and "cancel requested (running)" in text
    assert "cancelled at train" in text and "summary: train" in text and "loss/train" in text
    log.close()
    qtbot.waitUntil(lambda: "was cancelled" in window.statusBar().currentMessage(), timeout=5000)


class _Stay:
    def exec(self):
        from PySide6.QtWidgets import QMessageBox

        return QMessageBox.StandardButton.Cancel

    def checkBox(self):
        return None


def test_reopening_shows_the_runs_and_a_running_job_live_again(studio, qtbot, tmp_path, monkeypatch):
    from app.main_window import MainWindow

    ws = tmp_path / "ws"
    done = fake.write_run(ws, fake.run_id("train", 1), name="finished earlier", events=fake.training_events(40))
    live_dir = fake.write_run(ws, fake.run_id("train", 2, stamp="20261126-140000"), name="still training")
    writer = start_writer(live_dir, n=120, pause=0.05)
    try:
        first = studio(ws)
        qtbot.waitUntil(lambda: first.runs_view.model.row_of(live_dir.name) is not None, timeout=10_000)
        first.show_run(live_dir.name)
        loss = first.run_view.panel(TrainingPanel).loss
        qtbot.waitUntil(lambda: "loss/train" in loss.series_names(), timeout=10_000)
        # Quitting says the job keeps running (and staying is possible).
        assert "1 job keeps running after you quit (“still training”)" in first.quit_notice()
        monkeypatch.setattr(MainWindow, "quit_box", lambda self, text: _Stay())
        assert first.quit() is False and first.isVisible()
        first.close()
        assert writer.poll() is None, "closing the window must leave the job running"

        # The workspace is remembered; reopening it shows every run and follows the live one again.
        assert workspaces.initial_workspace(None) == ws.resolve()
        second = studio(workspaces.initial_workspace(None))
        rows = {second.runs_view.model.run_at(i).id for i in range(second.runs_view.model.rowCount())}
        assert {done.name, live_dir.name} <= rows
        assert second.run_view.run_id == live_dir.name      # a running run is shown on opening
        loss = second.run_view.panel(TrainingPanel).loss
        header = second.run_view.header
        qtbot.waitUntil(lambda: " left" in header.progress.format(), timeout=10_000)      # the time left
        assert wait_status(qtbot, second, live_dir.name, ("done",), 30) == "done"
        # The window says a job it saw running has finished.
        qtbot.waitUntil(lambda: "“still training” finished" in second.statusBar().currentMessage(), timeout=10_000)
        qtbot.waitUntil(lambda: len(loss.series_data("loss/train")[0]) == 120, timeout=10_000)
        assert list(loss.series_data("loss/train")[0]) == list(range(1, 121))
    finally:
        writer.wait(30)


def test_a_scheduler_held_elsewhere_is_named_and_everything_still_shows(studio, qtbot, tmp_path):
    from ddae_core.jobs.scheduler import Scheduler

    ws = tmp_path / "ws"
    (ws / "runs").mkdir(parents=True)
    other = Scheduler(ws, cpu_slots=0, gpus=[])
    assert other.acquire()
    try:
        window = studio(ws)
        label = window.scheduler_label
        qtbot.waitUntil(lambda: "held by" in label.text(), timeout=10_000)
        assert f"pid {psutil.Process().pid} on {socket.gethostname()}" in label.text()

        # The holder leaves ingest to us (as a CLI scheduler between ticks might): runs still appear.
        other.ingester.release()
        run_dir = fake.write_run(ws, fake.run_id("train", 7), name="from elsewhere",
                                 events=fake.training_events(30, t0=time.time()))
        qtbot.waitUntil(lambda: window.runs_view.model.row_of(run_dir.name) is not None, timeout=10_000)
        assert "this window indexes" in label.text()

        # When the other scheduler stops, the window takes the queue over.
        other.release()
        qtbot.waitUntil(lambda: "from this window" in label.text(), timeout=15_000)
    finally:
        other.close()
