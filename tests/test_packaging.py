"""The installed shape: package data found through importlib.resources, the worker's environment and logging,
and the app's entry point on an install without Qt. (.ci/headless.sh installs a wheel without extras and runs it.)"""

from __future__ import annotations

import importlib.util
import logging
from importlib import resources
from pathlib import Path

import pytest

from app import studio
from db.engine import MIGRATIONS_DIR
from ddae_core import worker
from ddae_core.engine.config import PRESET_DIR, preset_names
from ddae_core.jobs.worker_process import worker_env


def test_presets_and_migrations_are_package_data():
    assert PRESET_DIR == Path(str(resources.files("resources") / "presets"))
    assert "tiny-ddpm" in preset_names()
    assert MIGRATIONS_DIR == Path(str(resources.files("db") / "migrations"))
    assert (MIGRATIONS_DIR / "env.py").is_file() and (MIGRATIONS_DIR / "script.py.mako").is_file()


def test_the_worker_gets_no_pythonpath():
    """The worker is the same interpreter's `python -m ddae_core.worker`: ddae_core is installed there."""
    assert "PYTHONPATH" not in worker_env([], ["cpu0"], base={"PATH": "/bin"})
    assert worker_env([], ["cpu0"], base={"PATH": "/bin", "PYTHONPATH": "/x"})["PYTHONPATH"] == "/x"


@pytest.fixture
def clean_logging():
    names = ("", *worker.PROJECT_LOGGERS)
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level, logging.getLogger(n).propagate)
             for n in names}
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


def test_worker_logging_writes_the_jobs_lines_as_prints_did(clean_logging, capsys):
    worker.setup_logging()
    logging.getLogger("ddae_core.engine.training").info("data: 64 images")
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")    # not a job's line
    logging.getLogger("db.ingest").warning("Not indexing run x: no spec")
    out, err = capsys.readouterr()
    assert out == "data: 64 images\n"
    assert err == "Not indexing run x: no spec\n"


def test_the_app_without_qt_names_the_extra(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "PySide6" else real(name, *a))
    assert studio.main([], prog="ddae-studio") == 1
    err = capsys.readouterr().err
    assert "gui" in err and "\n" not in err.strip()


def test_main_py_starts_the_same_app(monkeypatch):
    import main

    seen = []
    monkeypatch.setattr(main, "studio_main", lambda argv, prog: seen.append((argv, prog)) or 0)
    assert main.main(["--no-scheduler"]) == 0 and seen == [(["--no-scheduler"], "main.py")]


def test_every_module_of_the_project_imports():
    """A module moved to a new home leaves no import of its old one behind (mypy skips missing modules, and a
    path no test happens to run would fail only in a user's hands)."""
    import importlib
    import pkgutil

    import app
    import bench
    import db
    import ddae_core

    failed = {}
    for package in (ddae_core, db, app, bench):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.startswith("db.migrations") or info.name.endswith("__main__"):
                continue            # run by Alembic and by `python -m`, not imported
            try:
                importlib.import_module(info.name)
            except Exception as exc:  # noqa: BLE001 - every failure is listed, whatever it is
                failed[info.name] = f"{exc.__class__.__name__}: {exc}"
    assert failed == {}
