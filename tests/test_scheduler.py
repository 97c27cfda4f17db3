"""The scheduler: slots, priorities, device requests, parent checkpoints, dead workers, cancel timeouts, the lock.

Most tests start a stand-in worker (a small Python script given as the scheduler's interpreter) that
writes the events a worker would, so they take seconds; the DDP test trains for real with torchrun.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

from db import Store, reindex
from db.testing import write_run
from ddae_core.engine.cpu_threads import threads_label
from ddae_core.jobs import queue_ops
from ddae_core.jobs.gpu_slots import NeverFits, slots_needed
from ddae_core.jobs.scheduler import WAITING_FOR_PARENT, Scheduler, SchedulerLockError
from ddae_core.jobs.worker_process import start_worker

from .fixtures import ROOT, micro_train_spec, tick_until

pytestmark = pytest.mark.usefixtures("no_leftover_processes")

FAKE_WORKER = r'''#!{python}
"""Stands in for `python -m ddae_core.worker RUN_DIR`: records how it was started, then acts out fake.json."""
import json, os, signal, socket, sys, time
run_dir = sys.argv[-1]
with open(os.path.join(run_dir, "started.jsonl"), "a") as fh:
    fh.write(json.dumps({{"argv": sys.argv[1:], "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                         "slots": os.environ.get("DDAE_SLOTS"), "pid": os.getpid(), "time": time.time()}}) + "\n")
try:
    plan = json.load(open(os.path.join(run_dir, "fake.json")))
except OSError:
    plan = {{}}
def event(**fields):
    with open(os.path.join(run_dir, "events.jsonl"), "a") as fh:
        fh.write(json.dumps({{"time": round(time.time(), 3), **fields}}) + "\n")
stop = []
signal.signal(signal.SIGTERM, signal.SIG_IGN if plan.get("ignore_term") else lambda *a: stop.append(1))
event(type="status", status="running", pid=os.getpid(), host=socket.gethostname())
deadline = time.time() + plan.get("seconds", 0)
while time.time() < deadline:
    if (stop or os.path.exists(os.path.join(run_dir, "STOP"))) and not plan.get("ignore_term"):
        event(type="status", status="cancelled")
        sys.exit(3)
    time.sleep(0.05)
if plan.get("status", "done") != "crash":
    event(type="status", status=plan.get("status", "done"))
sys.exit({{"done": 0, "failed": 1}}.get(plan.get("status", "done"), 9))
'''


@pytest.fixture
def fake_python(tmp_path) -> str:
    path = tmp_path / "fake-python"
    path.write_text(FAKE_WORKER.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


def fake_job(store: Store, name: str, *, priority: int = 0, device: str = "cpu", gpus: int = 0,
             parent: dict | None = None, kind: str | None = None, **plan) -> str:
    """A queued run folder for the stand-in worker, which acts out `plan` (seconds, status, ignore_term)."""
    from ddae_core.jobs.specs import create_job

    spec = {"kind": kind or ("probe" if parent else "train"), "name": name, "data": "builtin:shapes", "parent": parent,
            "device": {"request": device, "gpus": gpus}, "config": None, "options": {}}
    run_dir = create_job(store.workspace, spec, queue={"priority": priority, "gpus": gpus})
    (run_dir / "fake.json").write_text(json.dumps(plan))
    store.register_run(run_dir)
    store.enqueue(run_dir.name, priority=priority, gpus=gpus, device_request=device)
    return run_dir.name


def starts(store: Store, run_id: str) -> list[dict]:
    path = store.run_dir(run_id) / "started.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def status(store: Store, run_id: str) -> str:
    return store.get_run(run_id).status


def test_highest_priority_first_one_job_per_cpu_slot(store, fake_python):
    low = fake_job(store, "low", priority=0, seconds=0.3)
    high = fake_job(store, "high", priority=5, seconds=0.3)
    mid = fake_job(store, "mid", priority=1, seconds=0.3)
    with Scheduler(store.workspace, store, cpu_slots=1, gpus=[], python=fake_python) as scheduler:
        first = scheduler.tick()
        assert [run for run, _ in first.started] == [high]
        assert dict(first.waiting) == {mid: "waiting for a free CPU slot", low: "waiting for a free CPU slot"}
        assert status(store, high) == "running"
        assert store.get_run(high).device == f"cpu0 ({threads_label(scheduler.cpu_threads)})"    # its thread budget
        assert [s.run for s in scheduler.slots()] == [high]
        tick_until(scheduler, lambda: all(status(store, r) == "done" for r in (low, high, mid)), 30)
    started = sorted((starts(store, r)[0]["time"], r) for r in (low, high, mid))
    assert [r for _, r in started] == [high, mid, low]
    # Each started once, on the CPU: no GPU visible, the plain worker command, its slot named.
    for run in (low, high, mid):
        (only,) = starts(store, run)
        assert only["argv"] == ["-m", "ddae_core.worker", str(store.run_dir(run))]
        assert only["cuda"] == "" and only["slots"] == "cpu0"


def test_gpu_jobs_get_their_own_gpus_and_several_gpus_run_under_torchrun(store, fake_python):
    pair = fake_job(store, "two gpus", device="auto", gpus=2, priority=2, seconds=1)
    one = fake_job(store, "one gpu", device="cuda", gpus=1, priority=1, seconds=1)
    cpu = fake_job(store, "cpu", device="auto", gpus=0, seconds=1)
    other = fake_job(store, "another gpu", device="auto", gpus=1, seconds=1)
    with Scheduler(store.workspace, store, cpu_slots=1, gpus=[0, 1, 2], python=fake_python) as scheduler:
        report = scheduler.tick()
        assert dict(report.started) == {pair: "gpu0,gpu1", one: "gpu2", cpu: "cpu0"}
        assert dict(report.waiting) == {other: "waiting for 1 free GPU"}
        assert {s.id: s.run for s in scheduler.slots()} == {"cpu0": cpu, "gpu0": pair, "gpu1": pair, "gpu2": one}
        tick_until(scheduler, lambda: all(status(store, r) == "done" for r in (pair, one, cpu, other)), 30)
    (started,) = starts(store, pair)
    assert started["argv"] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                               "-m", "ddae_core.worker", str(store.run_dir(pair))]
    assert started["cuda"] == "0,1"
    assert starts(store, one)[0]["cuda"] == "2" and starts(store, cpu)[0]["cuda"] == ""
    assert starts(store, other)[0]["cuda"] in ("0", "1", "2")

    # Only training runs data-parallel: another kind given two GPUs runs as one process that sees both.
    sampling = fake_job(store, "sample on two gpus", kind="sample", device="cuda", gpus=2, seconds=0)
    with Scheduler(store.workspace, store, cpu_slots=1, gpus=[0, 1, 2], python=fake_python) as scheduler:
        tick_until(scheduler, lambda: status(store, sampling) == "done", 20)
    (started,) = starts(store, sampling)
    assert started["argv"] == ["-m", "ddae_core.worker", str(store.run_dir(sampling))] and started["cuda"] == "0,1"


def test_a_cuda_error_is_logged_once_and_a_gpu_job_sent_to_the_cpu_says_why(store, fake_python, monkeypatch,
                                                                             caplog):
    import torch

    from ddae_core.jobs import gpu_slots

    def broken():
        raise RuntimeError("CUDA error: unknown error\nCUDA kernel errors might be asynchronously reported")

    monkeypatch.setattr(torch.cuda, "device_count", broken)
    monkeypatch.setattr(gpu_slots, "_problems_logged", set())
    with caplog.at_level("WARNING", logger="ddae_core.jobs.gpu_slots"):
        assert gpu_slots.detect_gpus() == [] and gpu_slots.detect_gpus() == []
    cause = "CUDA failed: RuntimeError: CUDA error: unknown error"
    assert gpu_slots.gpu_problem() == cause
    assert [r.getMessage() for r in caplog.records] == [
        f"no GPU slots: {cause}; GPU jobs that allow it run on the CPU"]           # once, with its cause
    one_gpu = fake_job(store, "one gpu", device="auto", gpus=1, seconds=0)
    on_cpu = fake_job(store, "cpu job", device="auto", gpus=0, seconds=0)
    with Scheduler(store.workspace, store, cpu_slots=2, gpus=None, python=fake_python) as scheduler:
        assert dict(scheduler.tick().started) == {one_gpu: "cpu0", on_cpu: "cpu1"}
        tick_until(scheduler, lambda: status(store, one_gpu) == status(store, on_cpu) == "done", 20)
    log_text = (store.run_dir(one_gpu) / "log.txt").read_text()
    assert f"asked for 1 GPU with --device auto, but this machine has none usable ({cause}): running on the CPU" \
        in log_text
    assert not (store.run_dir(on_cpu) / "log.txt").exists() or "GPU" not in (store.run_dir(on_cpu) / "log.txt").read_text()


def test_jobs_that_can_never_fit_fail_with_one_sentence(store, fake_python):
    cuda = fake_job(store, "cuda", device="cuda", gpus=1)
    auto = fake_job(store, "auto", device="auto", gpus=1, seconds=0)
    with Scheduler(store.workspace, store, cpu_slots=1, gpus=[], python=fake_python) as scheduler:
        report = scheduler.tick()
        assert dict(report.started) == {auto: "cpu0"}          # auto without a GPU runs on the CPU
        assert [run for run, _ in report.refused] == [cuda]
        tick_until(scheduler, lambda: status(store, auto) == "done", 20)
    record = store.get_run(cuda)
    assert record.status == "failed" and store.queued_jobs() == []
    assert record.error == (f"Run {cuda} asks for CUDA but this machine has no GPU visible to PyTorch; "
                            "launch it again with --device cpu or --device auto.")
    # The failure is in the run's own events, so a reindex agrees.
    reindex(store.workspace)
    assert store.get_run(cuda).status == "failed"

    with pytest.raises(NeverFits, match=r"asks for 2 GPUs but this machine has 1; resume it with .*--gpus 1"):
        slots_needed("r", "auto", 2, n_gpu=1, n_cpu=1)
    assert slots_needed("r", "cpu", 4, n_gpu=2, n_cpu=1) == ("cpu", 1)
    assert slots_needed("r", "cuda", 0, n_gpu=2, n_cpu=1) == ("gpu", 1)


def test_evaluation_waits_for_its_parent_checkpoint(store, fake_python):
    parent = write_run(store.workspace, "20261126-120000-train-0001", events=[
        {"type": "status", "status": "running", "pid": 1, "host": "elsewhere", "time": time.time()}]).name
    store.register_run(store.run_dir(parent))
    latest = fake_job(store, "probe latest", parent={"run": parent, "checkpoint": "latest"}, seconds=0)
    at_step = fake_job(store, "probe step 8", parent={"run": parent, "checkpoint": 8}, seconds=0)
    with Scheduler(store.workspace, store, cpu_slots=1, gpus=[], python=fake_python) as scheduler:
        report = scheduler.tick()
        assert dict(report.waiting) == {latest: WAITING_FOR_PARENT, at_step: f"{WAITING_FOR_PARENT} 8"}
        scheduler.tick()                              # ingests the reason the queue wrote
        assert store.get_run(latest).progress_stage == WAITING_FOR_PARENT
        assert store.get_run(latest).status == "queued"

        # A first checkpoint: 'latest' can start; step 8 still waits.
        (store.run_dir(parent) / "checkpoints").mkdir()
        (store.run_dir(parent) / "checkpoints" / "step_000004.pt").write_bytes(b"")
        report = scheduler.tick()
        assert [run for run, _ in report.started] == [latest]
        assert dict(report.waiting) == {at_step: f"{WAITING_FOR_PARENT} 8"}
        tick_until(scheduler, lambda: status(store, latest) == "done", 20)

        # The parent ends without a checkpoint at step 8: the evaluation fails instead of waiting forever.
        store.set_status(parent, "done")
        report = scheduler.tick()
        assert dict(report.refused)[at_step] == (
            f"Run {at_step} needs a checkpoint at step 8 of run {parent}, which ended done without it; "
            "evaluate another checkpoint or run.")

        orphan = fake_job(store, "probe of a deleted run", parent={"run": parent, "checkpoint": "latest"})
        store.delete_run(parent, remove_files=True)
        report = scheduler.tick()
        assert "which was deleted" in dict(report.refused)[orphan]


def test_running_runs_whose_process_is_gone_are_interrupted_even_with_a_reused_pid(store, fake_python):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.2)
        host = socket.gethostname()
        me = psutil.Process()
        runs = {
            "dead": (gone.pid, time.time()),
            # Our own pid, named by an event from before this process existed: another process reused it.
            "reused": (os.getpid(), me.create_time() - 100),
            "alive": (sleeper.pid, time.time()),
        }
        ids = {}
        for n, (label, (pid, when)) in enumerate(runs.items()):
            rid = f"20261126-120000-train-{n:04x}"
            write_run(store.workspace, rid, events=[
                {"type": "status", "status": "running", "pid": pid, "host": host, "time": when}])
            ids[label] = rid
        elsewhere = write_run(store.workspace, "20261126-120000-train-00ff", events=[
            {"type": "status", "status": "running", "pid": gone.pid, "host": "another-host", "time": time.time()}]).name
        with Scheduler(store.workspace, store, cpu_slots=1, gpus=[], python=fake_python) as scheduler:
            report = scheduler.tick()
        assert sorted(report.interrupted) == sorted([ids["dead"], ids["reused"]])
        assert status(store, ids["alive"]) == "running"
        assert status(store, elsewhere) == "running"           # another host's run is that host's business
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_new_scheduler_finds_running_workers_and_their_slots(store, fake_python):
    long = fake_job(store, "long", seconds=2.5, priority=1)
    nxt = fake_job(store, "next", seconds=0)
    first = Scheduler(store.workspace, store, cpu_slots=1, gpus=[], python=fake_python)
    first.require()
    assert [run for run, _ in first.tick().started] == [long]
    first.close()                                   # the GUI closes; its worker keeps running
    with Scheduler(store.workspace, store, cpu_slots=1, gpus=[], python=fake_python) as second:
        report = second.tick()
        assert report.started == () and dict(report.waiting) == {nxt: "waiting for a free CPU slot"}
        assert second.running() == {long: ("cpu0",)}
        tick_until(second, lambda: status(store, nxt) == "done", 30)
    assert status(store, long) == "done"


def test_cancel_kills_a_worker_that_ignores_the_stop_request_after_the_timeout(store, fake_python):
    stuck = fake_job(store, "stuck", seconds=60, ignore_term=True)
    with Scheduler(store.workspace, store, cpu_slots=1, gpus=[], python=fake_python, kill_timeout_s=0.5) as scheduler:
        tick_until(scheduler, lambda: starts(store, stuck) and store.get_run(stuck).pid == starts(store, stuck)[0]["pid"])
        pid = starts(store, stuck)[0]["pid"]
        assert queue_ops.cancel(store, store.workspace, stuck).startswith("stop requested")
        reports = tick_until(scheduler, lambda: status(store, stuck) == "cancelled", 10)
        assert any(stuck in r.killed for r in reports)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert store.get_run(stuck).error.startswith("The job did not stop within 0.5 s of the cancel request")
    events = [json.loads(line) for line in (store.run_dir(stuck) / "events.jsonl").read_text().splitlines()]
    assert events[-1]["status"] == "cancelled"


def test_cancel_and_resume_a_queued_job(store, fake_python):
    run = fake_job(store, "queued", seconds=0)
    assert queue_ops.cancel(store, store.workspace, run) == "cancelled (it had not started)"
    assert status(store, run) == "cancelled" and store.queued_jobs() == []
    reindex(store.workspace)                         # its events say so too
    assert status(store, run) == "cancelled"
    with pytest.raises(queue_ops.UserError, match="is cancelled, so there is nothing to cancel"):
        queue_ops.cancel(store, store.workspace, run)

    (store.run_dir(run) / "STOP").write_text("")
    entry = queue_ops.resume(store, store.workspace, run, priority=3)
    assert (entry.run, entry.priority) == (run, 3) and not (store.run_dir(run) / "STOP").exists()
    queue_ops.set_priority(store, run, 9)
    assert store.queued_jobs()[0].priority == 9
    with Scheduler(store.workspace, store, cpu_slots=1, gpus=[], python=fake_python) as scheduler:
        tick_until(scheduler, lambda: status(store, run) == "done", 20)
    with pytest.raises(queue_ops.UserError, match="cannot be resumed: it finished"):
        queue_ops.resume(store, store.workspace, run)
    with pytest.raises(queue_ops.UserError, match="not queued"):
        queue_ops.set_priority(store, run, 1)
    with pytest.raises(queue_ops.UserError, match="No run 'nope'"):
        queue_ops.cancel(store, store.workspace, "nope")


def test_one_scheduler_per_workspace(store):
    first = Scheduler(store.workspace, store, gpus=[])
    second = Scheduler(store.workspace, store, gpus=[])
    with pytest.raises(RuntimeError, match="call acquire"):
        first.tick()
    assert first.holder() is None
    assert first.acquire()
    try:
        assert not second.acquire()
        assert second.holder() == f"pid {os.getpid()} on {socket.gethostname()}"
        with pytest.raises(SchedulerLockError, match=r"^The scheduler of .* is already running \(pid \d+ on "):
            second.require()
    finally:
        first.release()
    assert second.acquire()
    second.release()


def test_slots_free_up_while_another_process_holds_the_ingest_lock(store, fake_python):
    """Headless scheduler, app open beside it and indexing: finished workers still free their slots."""
    from db import Ingester

    first = fake_job(store, "first", priority=2, seconds=0)
    crash = fake_job(store, "crash", priority=1, status="crash")
    last = fake_job(store, "last", seconds=0)
    with Scheduler(store.workspace, store, cpu_slots=1, gpus=[], python=fake_python) as scheduler:
        scheduler.ingester.release()
        app = Ingester(store)
        assert app.acquire()
        try:
            reports = tick_until(scheduler, lambda: starts(store, last), 30, 0.1)
            finished = [item for r in reports for item in r.finished]
            assert (first, "done") in finished and all(r.ingest is None for r in reports)
            assert not any(r.interrupted for r in reports)     # the crash waits to be judged on a fresh index
            app.ingest_once()
            assert status(store, crash) == "running"
        finally:
            app.release()
        reports = tick_until(scheduler, lambda: status(store, crash) != "running", 10, 0.1)
        assert crash in [run for r in reports for run in r.interrupted]
        tick_until(scheduler, lambda: status(store, last) == "done", 20, 0.1)


def test_serve_ticks_on_another_thread_until_stopped_and_gives_the_lock_back(store, fake_python):
    run = fake_job(store, "threaded", seconds=0.5)
    scheduler = Scheduler(store.workspace, store, gpus=[], python=fake_python)
    stop, reports = threading.Event(), []
    thread = threading.Thread(target=scheduler.serve, args=(stop, 0.05), kwargs={"on_tick": reports.append})
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while status(store, run) != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scheduler.holder() == f"pid {os.getpid()} on {socket.gethostname()}"
        assert [(s.id, s.run) for s in scheduler.slots()] == [("cpu0", run)]     # read while it ticks
        while status(store, run) != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive() and status(store, run) == "done"
    assert (run, "cpu0") in [started for r in reports for started in r.started]
    assert scheduler.holder() is None                  # serve took the lock and gave it back
    scheduler.close()


TWO_RANKS = """
import sys
from pathlib import Path

import torch

from ddae_core.engine.distributed import DistContext
from ddae_core.engine.reporting import Reporter
from ddae_core.engine.spec.run_spec import load_spec
from ddae_core.engine.training import Trainer

run_dir = Path(sys.argv[1])
rank = DistContext.from_env().rank
trainer = Trainer(load_spec(run_dir), run_dir, Reporter(run_dir, enabled=rank == 0), run_dir.parent.parent)
start = {k: v.clone() for k, v in trainer.model.net.state_dict().items()}
batches = [trainer.sampler.batch(s)[rank::2].tolist() for s in range(trainer.total_steps)]
try:
    trainer.run()
    trainer.dist.barrier()
finally:
    trainer.dist.shutdown()
torch.save({"start": start, "end": trainer.model.net.state_dict(), "batches": batches}, run_dir / f"rank{rank}.pt")
"""


def test_two_ranks_hold_identical_weights_after_steps_on_different_data(workspace, tmp_path):
    """DDP as the engine sets it up: each rank draws its own images and its own init seed, and gradients
    averaged across ranks keep the two copies of the network equal, value for value."""
    import torch

    from ddae_core.jobs.specs import create_job

    run_dir = create_job(workspace, micro_train_spec(steps=3, checkpoint_every=3))
    script = tmp_path / "two_ranks.py"
    script.write_text(TWO_RANKS)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), str(run_dir)], env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    rank0, rank1 = (torch.load(run_dir / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for step, (a, b) in enumerate(zip(rank0["batches"], rank1["batches"])):
        assert a and b and not set(a) & set(b), f"step {step}: the ranks read the same images"
    assert rank0["end"].keys() == rank1["end"].keys()
    for name, weight in rank0["end"].items():
        assert torch.equal(weight, rank1["end"][name]), f"{name} differs between the ranks"
    moved = [name for name, w in rank0["end"].items() if w.is_floating_point() and not torch.equal(w, rank0["start"][name])]
    assert len(moved) > len(rank0["end"]) // 2                       # they trained, not merely stood still


def test_torchrun_trains_with_two_processes_on_the_cpu_and_rank0_alone_reports(workspace, monkeypatch):
    """The K > 1 GPUs launch path, on CPU slots: torchrun, two gloo ranks, one set of events."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    from ddae_core.engine.spec.run_spec import TrainSettings
    from ddae_core.engine.training import lr_at
    from ddae_core.jobs.specs import create_job

    steps = 6
    run_dir = create_job(workspace, micro_train_spec(steps=steps, checkpoint_every=3))
    popen = start_worker(run_dir, gpu_ids=[], slots=("cpu0", "cpu1"), nproc=2)
    try:
        assert popen.wait(timeout=150) == 0, (run_dir / "log.txt").read_text()[-3000:]
    finally:
        popen.kill()
        popen.wait()
    lines = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    statuses = [e["status"] for e in lines if e["type"] == "status"]
    assert statuses == ["running", "done"]
    loss_steps = [e["step"] for e in lines if e.get("key") == "loss/train"]
    assert loss_steps == list(range(1, steps + 1))             # once per step: only rank 0 reports
    # Two ranks ran: the official scripts scale the learning rate by the world size.
    lr = [e["value"] for e in lines if e.get("key") == "lr"][-1]
    opts = TrainSettings.model_validate(json.loads(json.dumps(micro_train_spec(steps=steps)["options"])))
    assert lr == pytest.approx(2 * lr_at(steps - 1, 0, opts, steps))
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_000003.pt", "step_000006.pt"]
    assert "torch.distributed.run" in (run_dir / "log.txt").read_text()
