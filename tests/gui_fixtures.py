"""A real workspace for the GUI tests: two micro models trained a few steps, probed and evaluated.

Built once per test session (about 15 s on two CPU cores) and shared read-only by the compare and
classify tests; the engine runs in-process, exactly as a worker would.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

DATA = "builtin:shapes?n_train=256&n_test=64"


@dataclass(frozen=True)
class GuiWorkspace:
    path: Path
    train_a: str
    train_b: str
    probe_a: str            # timesteps 11, 51 on every layer
    probe_b: str            # timesteps 11, 101: a different grid
    noisy_a: str


_built: GuiWorkspace | None = None


def _micro_config(dropout: float | None = None) -> dict:
    from tests.fixtures import micro_config

    cfg = micro_config(**({} if dropout is None else {"dropout": dropout}))
    cfg.setdefault("studio", {}).update({"sample_steps": 2, "checkpoint_every_steps": 4, "sample_every_steps": 4})
    cfg["n_sample"] = 4
    return cfg


def build_workspace(ws: Path) -> GuiWorkspace:
    from db import Ingester, Store
    from ddae_core.jobs.eval_specs import noisy_spec, probe_spec
    from ddae_core.jobs.specs import create_job, execute, train_spec

    def run(spec) -> Path:
        run_dir = create_job(ws, spec)
        status = execute(run_dir, ws, handle_signals=False)
        assert status == "done", (run_dir / "log.txt").read_text() if (run_dir / "log.txt").exists() else status
        return run_dir

    (ws / "runs").mkdir(parents=True, exist_ok=True)
    # The two runs differ in dropout and lr whatever the preset's defaults are.
    train_a = run(train_spec(config=_micro_config(dropout=0.1), data=DATA, steps=8, batch_size=16, device="cpu",
                             lr=6e-4))
    train_b = run(train_spec(config=_micro_config(dropout=0.0), data=DATA, steps=8, batch_size=16, device="cpu",
                             lr=1e-3, name="no dropout"))
    probe_a = run(probe_spec(train_a, timesteps="11,51", train_limit=128, test_limit=64, epochs=2, device="cpu"))
    probe_b = run(probe_spec(train_b, timesteps="11,101", train_limit=128, test_limit=64, epochs=2, device="cpu"))
    noisy_a = run(noisy_spec(train_a, train_limit=64, test_limit=32, epochs=1, device="cpu"))
    store = Store.open(ws)
    try:
        ingester = Ingester(store, ws)
        ingester.acquire()
        try:
            ingester.ingest_once()
        finally:
            ingester.release()
    finally:
        store.close()
    return GuiWorkspace(ws, train_a.name, train_b.name, probe_a.name, probe_b.name, noisy_a.name)


@contextmanager
def one_torch_thread():
    """Micro models gain nothing from two threads, and on a shared 2-core box OpenMP threads that wait
    for each other's core make training several times slower; one thread keeps timings steady."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def gui_workspace(tmp_path_factory) -> GuiWorkspace:
    """The shared workspace (built on first use, once per session even if several modules import this)."""
    global _built
    if _built is None:
        with one_torch_thread():
            _built = build_workspace(tmp_path_factory.mktemp("gui_ws") / "ws")
    return _built


@pytest.fixture
def gui_store(gui_workspace):
    from db import Store

    store = Store.open(gui_workspace.path)
    yield store
    store.close()
