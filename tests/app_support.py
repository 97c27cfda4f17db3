"""Fixtures and helpers of the app's tests (imported by tests/test_app_*.py).

`studio` opens main windows on a temporary workspace with temporary settings and closes them at the
end; `no_leftovers` (which `studio` uses) fails a test that leaves a worker process, a QThread or a
Python thread running.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import warnings
from pathlib import Path

import psutil
import pytest

from tests.fixtures import micro_config

MICRO_DATA = "builtin:shapes?n_train=256&n_test=64"


def micro_overrides() -> dict:
    """The launch form's YAML overrides that make tiny-ddpm a 0.3M-parameter test network."""
    cfg = micro_config()
    return {"network": {k: cfg["network"][k] for k in ("ch_mults", "is_attn", "n_blocks")},
            "linear": {"blockname": "out_3"}, "studio": {"sample_steps": 2, "log_every_steps": 1}, "n_sample": 4}


def _running_qthreads() -> list:
    from PySide6.QtCore import QThread

    found = []
    with warnings.catch_warnings():     # isinstance() on some lazy module proxies warns
        warnings.simplefilter("ignore")
        objects = [o for o in gc.get_objects() if isinstance(o, QThread)]
    for obj in objects:
        try:
            if obj.isRunning():
                found.append(obj)
        except RuntimeError:            # its C++ object is gone: not running
            pass
    return found


def _live_children() -> list[psutil.Process]:
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)     # an exited worker nobody waited for: reap it
                continue
            alive.append(child)
        except (psutil.Error, ChildProcessError):
            continue
    return alive


@pytest.fixture
def no_leftovers():
    """Fail the test if it leaves worker processes, QThreads or Python threads running."""
    threads_before = set(threading.enumerate())
    children_before = {p.pid for p in _live_children()}
    yield
    deadline = time.monotonic() + 15
    while True:
        children = [p for p in _live_children() if p.pid not in children_before]
        qthreads = _running_qthreads()
        threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        if not (children or qthreads or threads) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for child in children:          # clean up before failing, so one failure does not cascade
        try:
            child.kill()
            child.wait(5)
        except psutil.Error:
            pass
    problems = []
    if children:
        problems.append(f"processes {[' '.join(c.cmdline()[-3:]) for c in children if c.is_running()]}")
    if qthreads:
        problems.append(f"QThreads {[t.objectName() for t in qthreads]}")
    if threads:
        problems.append(f"threads {[t.name for t in threads]}")
    if problems:
        pytest.fail("The test left running: " + "; ".join(problems))


@pytest.fixture
def app_settings(tmp_path, monkeypatch) -> Path:
    """The app's settings in a temporary INI file (never the user's)."""
    path = tmp_path / "studio-settings.ini"
    monkeypatch.setenv("DDAE_STUDIO_SETTINGS", str(path))
    return path


@pytest.fixture
def studio(qtbot, no_leftovers, app_settings, tmp_path):
    """open(workspace=None, **kwargs) -> a shown MainWindow; every window is closed at teardown."""
    from app.main_window import MainWindow

    windows = []

    def open_window(workspace: Path | None = None, **kwargs) -> MainWindow:
        window = MainWindow(workspace or tmp_path / "ws", **kwargs)
        qtbot.addWidget(window)
        window.resize(1300, 850)
        window.show()
        windows.append(window)
        return window

    yield open_window
    for window in windows:
        window.close()


def wait_status(qtbot, window, run_id: str, statuses: tuple[str, ...], timeout_s: float) -> str:
    """Wait until the window's index says the run has one of `statuses`; returns it."""
    seen = {}

    def reached() -> bool:
        seen["status"] = window.store.get_run(run_id).status
        return seen["status"] in statuses

    qtbot.waitUntil(reached, timeout=int(timeout_s * 1000))
    return seen["status"]


def trained_run_with_samples(ws: Path, side: int = 64) -> Path:
    """A fake finished-looking train run (100 steps of curves) with one side x side sample grid at step 100."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage

    from db import testing as fake

    train = fake.write_run(ws, fake.run_id("train", 1), name="trained", events=fake.training_events(100))
    img = QImage(side, side, QImage.Format.Format_RGB888)
    img.fill(Qt.GlobalColor.darkCyan)
    (train / "samples").mkdir()
    assert img.save(str(train / "samples" / "step_000100.png"))
    return train


def answer_next_box(qtbot, answer) -> list[str]:
    """Answer the next modal QMessageBox with `answer(box)` once it shows; the list gets the box's text."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    shown: list[str] = []

    def respond():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, respond)
            return
        shown.append(box.text())
        answer(box)

    QTimer.singleShot(50, respond)
    return shown


def press(button):
    """An answer for answer_next_box: click the box's standard `button`."""
    return lambda box: box.button(button).click()


def compare_view(qtbot, store):
    """A shown Compare view on `store`; its live hub is polled by the test (no reader thread)."""
    from app.compare.feed import CompareFeed
    from app.compare.view import CompareView
    from app.live import LiveHub

    view = CompareView(CompareFeed(store), LiveHub(store))
    qtbot.addWidget(view)
    view.show()
    view.hub.poll()         # the selection remembered from a previous view, if any
    return view


def compare_runs(view, run_ids: list[str]) -> None:
    """Choose the runs to compare and read them now, as the hub's reader would at its next tick."""
    view.set_runs(run_ids)
    view.hub.poll()
