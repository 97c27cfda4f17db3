"""The fixtures and helpers every test module shares: the workspace, its index, one thread, the micro models.

conftest.py registers this module (pytest_plugins); test modules import its helpers from here, never from
conftest. Tests never touch the user's workspace or settings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures" / "official"
CIFAR_MINI = SHARED / "data" / "cifar10-mini"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not present (the shared folder beside the checkout)")
    return path


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Point HOME, the workspace default and Qt settings at a temporary folder."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DDAE_WORKSPACE", str(home / "ddae-workspace"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    yield


@pytest.fixture
def workspace(tmp_path) -> Path:
    ws = tmp_path / "ws"
    (ws / "runs").mkdir(parents=True)
    (ws / "data").mkdir()
    return ws


def micro_config(framework: str = "ddpm", **network) -> dict:
    """A tiny network (0.3M parameters) for tests where the architecture's size does not matter."""
    from ddae_core.engine.config import load_config

    cfg = load_config("tiny-ddpm" if framework == "ddpm" else "tiny-edm")
    cfg["network"].update({"ch_mults": [1, 2], "is_attn": [False, True], "n_blocks": 1, **network})
    cfg["linear"]["blockname"] = "out_3"
    return cfg


@pytest.fixture
def store(workspace):
    """The index (db.Store) of a fresh workspace, closed after the test."""
    from db import Store

    with Store.open(workspace) as s:
        yield s


@pytest.fixture
def one_thread(monkeypatch):
    """One BLAS thread per process: on a shared two-core machine several threads each only wait on each other."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_leftover_processes():
    """Fail the test if it leaves a child process running (its workers get 15 s to exit first)."""
    import time

    import psutil

    yield
    me = psutil.Process()

    def running():
        alive = []
        for child in me.children(recursive=True):
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child)
            except psutil.NoSuchProcess:
                pass
        return alive

    deadline = time.monotonic() + 15
    left = running()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = running()
    if left:
        def describe(p):
            try:
                return f"{p.pid} ({' '.join(p.cmdline()[:4])})"
            except psutil.Error:
                return str(p.pid)

        described = ", ".join(describe(p) for p in left)
        for p in left:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        pytest.fail(f"the test left {len(left)} child processes running: {described}")


# Queue and scheduler tests: tiny real jobs.
MICRO_DATA = "builtin:shapes?n_train=256&n_test=64"


def micro_train_config(**studio) -> dict:
    """micro_config as a few-step training run wants it: two-step samples, a loss point every step."""
    cfg = micro_config()
    cfg["studio"].update({"sample_steps": 2, "log_every_steps": 1, **studio})
    return cfg


def micro_train_spec(steps: int = 8, checkpoint_every: int = 4, device: str = "cpu", gpus: int = 0, **kwargs) -> dict:
    """A train spec that runs in seconds on a CPU: the micro network, 16 images a step, 4 two-step samples."""
    from ddae_core.jobs.specs import train_spec

    cfg = micro_train_config()
    cfg["n_sample"] = 4
    return train_spec(config=cfg, data=MICRO_DATA, steps=steps, batch_size=16, device=device, gpus=gpus,
                      data_limit=256, checkpoint_every_steps=checkpoint_every, sample_every_steps=1000, **kwargs)


def ingest(ws: Path) -> None:
    """One ingest pass of workspace `ws` into its index, as a scheduler's tick would."""
    from db import Ingester, Store

    with Store.open(ws) as store, Ingester(store) as ingester:
        ingester.ingest_once()


def queue_job(store, spec: dict, priority: int = 0) -> str:
    """Queue `spec` through the one door, as `ddae ... --queue` does (a taken name numbered); returns the run id."""
    from ddae_core.jobs.submit import submit

    return submit(store.workspace, spec, priority, name_chosen=False, store=store)


def tick_until(scheduler, done, timeout_s: float = 60.0, interval_s: float = 0.2) -> list:
    """tick() until done() is true; the reports; AssertionError naming the timeout otherwise."""
    import time

    reports = []
    deadline = time.monotonic() + timeout_s
    while True:
        reports.append(scheduler.tick())
        if done():
            return reports
        if time.monotonic() > deadline:
            raise AssertionError(f"not done after {timeout_s} s; last reports: {reports[-3:]}")
        time.sleep(interval_s)
