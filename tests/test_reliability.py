"""Nothing is lost: killed workers, concurrent writers, a rebuilt index, a second scheduler, a full disk, cancel.

Real worker processes, real SQLite, real training steps of a micro network; each test is bounded.
A garbage line and a torn last line at the ingester are covered in test_db_ingest.py.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from db import Ingester, Store
from ddae_core.cli import main as ddae
from ddae_core.engine.checkpoint import read_checkpoint
from ddae_core.engine.reporting import Reporter
from ddae_core.jobs import queue_ops
from ddae_core.jobs.scheduler import Scheduler
from ddae_core.jobs.specs import create_job, execute
from ddae_core.rundir import list_checkpoints

from .fixtures import ROOT, micro_train_spec, queue_job, tick_until

pytestmark = pytest.mark.usefixtures("no_leftover_processes", "one_thread")


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]


def latest_step(store: Store, run: str, key: str = "loss/train") -> int:
    return max((s.latest_step for s in store.summaries(run) if s.key == key), default=0)


def test_a_killed_worker_is_interrupted_and_resume_finishes_it_with_every_step_once(workspace):
    steps = 14
    with Store.open(workspace) as store, Scheduler(workspace, store, cpu_slots=1, gpus=[]) as scheduler:
        run = queue_job(store, micro_train_spec(steps=steps, checkpoint_every=4))
        run_dir = store.run_dir(run)
        tick_until(scheduler, lambda: list_checkpoints(run_dir) and latest_step(store, run) >= 6, 90, 0.1)
        record = store.get_run(run)
        assert record.status == "running" and latest_step(store, run) < steps
        os.kill(record.pid, signal.SIGKILL)
        reports = tick_until(scheduler, lambda: store.get_run(run).status != "running", 20, 0.1)
        assert run in reports[-1].interrupted and store.get_run(run).status == "interrupted"
        saved = list_checkpoints(run_dir)[-1][0]

        queue_ops.resume(store, workspace, run)
        tick_until(scheduler, lambda: store.get_run(run).status not in ("queued", "running"), 120, 0.2)
        assert store.get_run(run).status == "done", (run_dir / "log.txt").read_text()[-2000:]

    with Store.open(workspace) as store:
        history = store.metric_history(run, "loss/train")
        assert list(history.steps) == list(range(1, steps + 1))       # every step once
    lines = events(run_dir)
    statuses = [(e["status"], e.get("resumed_from")) for e in lines if e["type"] == "status"]
    assert statuses == [("running", None), ("running", saved), ("done", None)]
    # The resumed worker reported again the steps after its checkpoint; the index kept one point each.
    reported = [e["step"] for e in lines if e.get("key") == "loss/train"]
    assert sorted(set(reported)) == list(range(1, steps + 1)) and len(reported) >= steps


def test_four_workers_logging_at_once_reach_the_index_exactly_once(workspace):
    """End to end with real workers (test_db_ingest.py does it with scripted writers and an editor)."""
    with Store.open(workspace) as store, Scheduler(workspace, store, cpu_slots=4, gpus=[]) as scheduler:
        runs = [queue_job(store, micro_train_spec(steps=6, checkpoint_every=3, seed=i)) for i in range(4)]
        first = scheduler.tick()
        assert sorted(run for run, _ in first.started) == sorted(runs)
        reports = tick_until(scheduler, lambda: all(store.get_run(r).status == "done" for r in runs), 150, 0.05)
        assert not [e for r in [first, *reports] for e in r.errors]
        assert sum((r.ingest.events if r.ingest else 0) for r in [first, *reports]) == \
            sum(len(events(store.run_dir(run))) for run in runs)        # every line ingested exactly once
        for run in runs:
            run_dir = store.run_dir(run)
            assert "locked" not in (run_dir / "log.txt").read_text()
            points: dict[str, dict[int, float]] = {}
            for e in events(run_dir):
                if e["type"] == "metric":
                    points.setdefault(e["key"], {})[e["step"]] = e["value"]
            assert store.metric_keys(run) == sorted(points)
            for key, by_step in points.items():
                steps, values, _ = store.metric_history(run, key)
                assert dict(zip(steps, values)) == by_step
            assert {s.key: s.count for s in store.summaries(run)} == {k: len(v) for k, v in points.items()}
            assert [a.path for a in store.artifacts(run, "checkpoint")] == \
                ["checkpoints/step_000003.pt", "checkpoints/step_000006.pt"]


def test_deleting_the_index_then_reindex_restores_identical_exports(workspace, tmp_path, capsys):
    from ddae_core.jobs.eval_specs import probe_spec

    train_dir = create_job(workspace, micro_train_spec(steps=4, checkpoint_every=4))
    assert execute(train_dir, workspace, handle_signals=False) == "done"
    probe_dir = create_job(workspace, probe_spec(train_dir, timesteps="11", train_limit=64, test_limit=32, epochs=1,
                                                 device="cpu"))
    assert execute(probe_dir, workspace, handle_signals=False) == "done"
    ws = ["--workspace", str(workspace)]
    assert ddae(["runs", "tag", train_dir.name, "baseline", *ws]) == 0
    assert ddae(["runs", "note", probe_dir.name, "first probe", *ws]) == 0

    def snapshot(out: Path) -> dict[str, bytes]:
        capsys.readouterr()
        shown = []
        for run in (train_dir.name, probe_dir.name):
            assert ddae(["runs", "export", run, "--csv", str(out / run), *ws]) == 0
            assert ddae(["runs", "show", run, *ws]) == 0
            shown.append(capsys.readouterr().out.replace(str(out), "OUT"))
        assert ddae(["runs", "list", *ws]) == 0
        files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.csv"))}
        return {**files, "shown": "".join(shown).encode(), "list": capsys.readouterr().out.encode()}

    before = snapshot(tmp_path / "before")
    assert {"loss_train.csv", "grid.csv", "probe_accuracy.csv"} <= {Path(name).name for name in before}
    for suffix in ("", "-wal", "-shm"):
        Path(f"{workspace / 'studio.sqlite'}{suffix}").unlink(missing_ok=True)
    assert ddae(["reindex", *ws]) == 0
    assert capsys.readouterr().out.startswith("reindexed 2 runs")
    after = snapshot(tmp_path / "after")
    assert after.keys() == before.keys()
    for name in before:
        assert after[name] == before[name], name
    assert b"tags      baseline" in after["shown"] and b"notes     first probe" in after["shown"]


def test_a_second_scheduler_refuses_to_start_and_names_the_holder(workspace):
    with Store.open(workspace) as store, Scheduler(workspace, store, gpus=[]) as scheduler:
        assert scheduler.tick().errors == ()
        out = subprocess.run([sys.executable, "-m", "ddae_core.cli", "queue", "serve", "--once", "--gpus", "none",
                              "--workspace", str(workspace)], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 2
        assert out.stderr == (f"error: The scheduler of {workspace} is already running (pid {os.getpid()} on "
                              f"{socket.gethostname()}); stop it first, or use `ddae queue list|cancel|resume|"
                              "priority` alongside it.\n")
        # The queue commands still work beside it: they read what the scheduler indexes.
        out = subprocess.run([sys.executable, "-m", "ddae_core.cli", "queue", "list", "--workspace", str(workspace)],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.startswith(f"scheduler: pid {os.getpid()} on ")


def test_a_full_disk_during_a_checkpoint_write_keeps_the_previous_checkpoint(workspace, monkeypatch):
    run_dir = create_job(workspace, micro_train_spec(steps=8, checkpoint_every=4))
    real_save, calls = torch.save, []

    def save_on_a_full_disk(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:                   # the second checkpoint: a partial write, then ENOSPC
            f.write(b"\0" * 4096)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    assert execute(run_dir, workspace, handle_signals=False) == "failed"
    monkeypatch.setattr(torch, "save", real_save)

    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_000004.pt"]   # no temp file
    assert read_checkpoint(run_dir / "checkpoints" / "step_000004.pt")["step"] == 4
    with Store.open(workspace) as store, Ingester(store) as ingester:
        ingester.ingest_once()
        record = store.get_run(run_dir.name)
        assert record.status == "failed"
        assert record.error == ("The disk is full while saving step_000008.pt; the previous checkpoint is intact, "
                                "so free some space and resume the run.")
    # As the sentence says: with space again, the run resumes from the intact checkpoint.
    assert execute(run_dir, workspace, handle_signals=False) == "done"
    assert [e.get("resumed_from") for e in events(run_dir) if e.get("status") == "running"] == [None, 4]


def test_a_checkpoint_write_cut_short_by_a_file_size_limit_gets_one_sentence(workspace):
    """torch reports the short write as `RuntimeError: [enforce fail at inline_container.cc:672]`."""
    import resource

    run_dir = create_job(workspace, micro_train_spec(steps=2, checkpoint_every=2))

    def limit_files_to_1_mb():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))      # a checkpoint is ~11 MB

    out = subprocess.run([sys.executable, "-m", "ddae_core.worker", str(run_dir)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=limit_files_to_1_mb)
    final = [e for e in events(run_dir) if e["type"] == "status"][-1]
    assert final["status"] == "failed", out.stderr
    assert final["error"] == ("Could not write the checkpoint step_000002.pt: the disk is full or not writable "
                              "(the write was cut short); there is no earlier checkpoint, so make room or fix the "
                              "folder's permissions and resume the run.")
    assert "Traceback" not in out.stderr and not list((run_dir / "checkpoints").iterdir())


def test_cancel_saves_a_checkpoint_and_ends_cancelled(workspace):
    with Store.open(workspace) as store, Scheduler(workspace, store, cpu_slots=1, gpus=[]) as scheduler:
        run = queue_job(store, micro_train_spec(steps=500, checkpoint_every=1000))
        tick_until(scheduler, lambda: latest_step(store, run) >= 2, 90, 0.1)
        assert queue_ops.cancel(store, workspace, run) == "stop requested (it saves a checkpoint and exits)"
        reports = tick_until(scheduler, lambda: store.get_run(run).status != "running", 60, 0.1)
        record = store.get_run(run)
        assert record.status == "cancelled" and record.error is None
        assert not any(r.killed for r in reports)          # it stopped by itself, well within the timeout
        (step, path), = list_checkpoints(store.run_dir(run))
        assert 2 <= step < 500 and read_checkpoint(path)["step"] == step
        assert [a.step for a in store.artifacts(run, "checkpoint")] == [step]


def test_a_resumed_worker_does_not_glue_its_first_line_to_a_torn_one(tmp_path):
    (tmp_path / "events.jsonl").write_text('{"type": "metric", "key": "loss/train", "step": 5, "val')
    reporter = Reporter(tmp_path)
    reporter.status("running", pid=1)
    reporter.close()
    last = (tmp_path / "events.jsonl").read_text().splitlines()[-1]
    assert json.loads(last)["status"] == "running"
