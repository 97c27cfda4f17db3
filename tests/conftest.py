"""The environment every test runs in, and the fixture modules it registers (tests/fixtures.py, the GUI's
tests/gui_fixtures.py). Tests import helpers from those modules, never from here."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see ddae_core/__init__.py

pytest_plugins = ["tests.fixtures", "tests.gui_fixtures"]
