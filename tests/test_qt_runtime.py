"""app.qt_runtime: what importing the app sets up before Qt runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.fixtures import ROOT

pytest.importorskip("PySide6")


def test_many_void_qt_calls_do_not_free_none():
    """PySide6 6.12 on Python < 3.12 loses a reference to None per void call; 300k calls would abort Python."""
    code = ("import app\n"
            "from PySide6.QtGui import QColor, QPen\n"
            "pen, color = QPen(), QColor()\n"
            "for _ in range(300_000):\n"
            "    pen.setWidth(1)\n"
            "    color.isValid()\n"           # a bool: True loses a reference the same way
            "print('alive')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "alive"


def test_qt_paints_on_the_gui_thread_unless_told_otherwise():
    code = "import os, app; print(os.environ['QT_NO_GUI_THREADPOOL'])"
    env = {k: v for k, v in os.environ.items() if k != "QT_NO_GUI_THREADPOOL"}
    shown = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert shown.stdout.strip() == "1", shown.stderr[-2000:]
    kept = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**env, "QT_NO_GUI_THREADPOOL": "0"})
    assert kept.stdout.strip() == "0", kept.stderr[-2000:]
