"""CPU jobs that share the CPU split it: each gets cores // cpu_slots threads, or what the user asks for."""

from __future__ import annotations

import json

import pytest

from db import Store
from ddae_core.engine import cpu_threads
from ddae_core.engine.cpu_threads import THREADS_ENV, job_threads, slot_threads, threads_label
from ddae_core.engine.errors import UserError
from ddae_core.jobs.scheduler import Scheduler
from ddae_core.jobs.worker_process import worker_env

from .fixtures import micro_train_spec, queue_job, tick_until

pytestmark = pytest.mark.usefixtures("no_leftover_processes")


def test_the_budget_splits_the_cores_between_the_slots_and_the_override_wins():
    assert slot_threads(1, env={}, cores=8) == 8
    assert slot_threads(3, env={}, cores=8) == 2
    assert slot_threads(4, env={}, cores=2) == 1                 # never fewer than one
    assert slot_threads(4, env={THREADS_ENV: "3"}, cores=2) == 3
    assert job_threads({"device": {"request": "cpu"}}, env={}) is None            # foreground: torch's default
    assert job_threads({"device": {"request": "cpu"}}, env={THREADS_ENV: "2"}) == 2
    assert job_threads({"device": {"request": "cpu", "threads": 5}}, env={THREADS_ENV: "2"}) == 5
    with pytest.raises(UserError, match=THREADS_ENV):
        slot_threads(2, env={THREADS_ENV: "many"})
    with pytest.raises(UserError, match="device.threads"):
        job_threads({"device": {"threads": 0}}, env={})
    assert [threads_label(n) for n in (1, 4)] == ["1 thread", "4 threads"]


def test_the_worker_environment_carries_the_budget_over_an_inherited_one():
    env = worker_env([], ["cpu0"], threads=1, base={"OMP_NUM_THREADS": "8", "PATH": "/bin"})
    assert (env["OMP_NUM_THREADS"], env["MKL_NUM_THREADS"], env[THREADS_ENV]) == ("1", "1", "1")
    assert "MKL_NUM_THREADS" not in worker_env(["0"], ["gpu0"], base={"PATH": "/bin"})


def _devices(store: Store, runs: list[str]) -> list[str]:
    """The device text of each run's worker, from its own `running` status event."""
    out = []
    for run in runs:
        events = [json.loads(line) for line in (store.run_dir(run) / "events.jsonl").read_text().splitlines()]
        out.append(next(e["device"] for e in events if e["type"] == "status" and e.get("device")))
    return out


def _run_all(workspace, runs_specs: int, cpu_slots: int) -> tuple[list[str], list[str]]:
    with Store.open(workspace) as store:
        runs = [queue_job(store, micro_train_spec(steps=2, checkpoint_every=2)) for _ in range(runs_specs)]
        scheduler = Scheduler(workspace, store, cpu_slots=cpu_slots, gpus=[])
        scheduler.require()
        try:
            reports = tick_until(scheduler, lambda: all(store.get_run(r).status in ("done", "failed") for r in runs),
                                 timeout_s=240, interval_s=0.3)
        finally:
            scheduler.close()
        assert [store.get_run(r).status for r in runs] == ["done"] * len(runs), \
            (store.run_dir(runs[0]) / "log.txt").read_text()[-2000:]
        started = [run for report in reports for run, _ in report.started]
        assert sorted(started) == sorted(runs)
        return runs, _devices(store, runs)


def test_two_cpu_slots_give_each_real_worker_half_the_cores(workspace, monkeypatch):
    """Two CPU slots on two cores: both workers run at once and each reports 1 thread, although the
    scheduler's own environment says OMP_NUM_THREADS=2 (the test suite's)."""
    monkeypatch.setattr(cpu_threads, "cpu_cores", lambda: 2)
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    _, devices = _run_all(workspace, 2, cpu_slots=2)
    assert devices == ["cpu (1 thread)", "cpu (1 thread)"]


def test_the_environment_override_wins_over_the_slot_budget(workspace, monkeypatch):
    monkeypatch.setattr(cpu_threads, "cpu_cores", lambda: 2)
    monkeypatch.setenv(THREADS_ENV, "3")
    runs, devices = _run_all(workspace, 1, cpu_slots=2)
    assert devices == ["cpu (3 threads)"]


def test_a_spec_that_names_its_threads_gets_them_in_the_foreground_too(workspace, monkeypatch):
    import torch

    from ddae_core.jobs.specs import create_job, execute
    from ddae_core.rundir import read_spec

    monkeypatch.setenv(THREADS_ENV, "2")                      # the spec is more specific than the environment
    spec = micro_train_spec(steps=1, checkpoint_every=1)
    spec["device"]["threads"] = 1
    run_dir = create_job(workspace, spec)
    assert read_spec(run_dir)["device"]["threads"] == 1
    before = torch.get_num_threads()
    try:
        assert execute(run_dir, workspace, handle_signals=False) == "done"
    finally:
        torch.set_num_threads(before)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["device"] for e in events if e["type"] == "status" and e.get("device")] == ["cpu (1 thread)"]
