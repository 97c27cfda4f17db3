"""`ddae queue ...`, `ddae runs ...` and `ddae reindex` as a user types them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from db import Store
from db.testing import artifact, grid, grid_cell, metric, status, training_events, write_run
from ddae_core.cli import main as ddae
from ddae_core.jobs import queue_ops
from ddae_core.jobs.scheduler import Scheduler

from .fixtures import MICRO_DATA, ROOT, micro_train_spec, queue_job, tick_until

pytestmark = pytest.mark.usefixtures("no_leftover_processes", "one_thread")

TRAIN, PROBE, BROKEN = "20261126-130000-train-0001", "20261126-130100-probe-0002", "20261126-130200-train-0003"


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ddae_core.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def scripted(workspace) -> Path:
    """Run folders as workers leave them (not indexed yet): a train run, its probe, a failed run."""
    write_run(workspace, TRAIN, name="tiny ddpm", created=100.0, events=training_events(50))
    write_run(workspace, PROBE, kind="probe", name="its probe", created=200.0,
              parent={"run": TRAIN, "checkpoint": "latest"},
              events=[status("running", pid=5, host="elsewhere"), grid([11, 51], ["out_6", "out_7"]),
                      grid_cell("out_6", 11, 0.874), grid_cell("out_7", 11, 0.851), grid_cell("out_6", 51, 0.8),
                      metric("probe/accuracy", 0, 0.874), metric("probe/baseline/pixels", 0, 0.1),
                      metric("probe/baseline/random_init", 0, 0.3), artifact("file", "grid.json"), status("done")])
    write_run(workspace, BROKEN, name="broken", created=300.0,
              events=[status("running", pid=6, host="elsewhere"), status("failed", error="The disk is full.")])
    return workspace


def test_runs_list_filters_and_reads_new_folders_first(scripted, capsys):
    ws = ["--workspace", str(scripted)]
    assert ddae(["runs", "list", *ws]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "KIND", "STATUS", "DATASET", "BEST", "ACC", "OVER", "PIXELS/RANDOM",
                                "LAST", "LOSS"]
    assert [line.split()[0] for line in lines[1:]] == [BROKEN, PROBE, TRAIN]     # newest first
    assert lines[2].split()[-6:] == ["87.4%", "(fast)", "+77.4", "/", "+57.4", "-"]    # the texts of the app's table
    assert lines[3].split()[-6:] == ["87.4%", "(fast)", "+77.4", "/", "+57.4", "0.02439"]   # its probe's headline
    assert ddae(["runs", "list", "--kind", "probe", *ws]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == [PROBE]
    assert ddae(["runs", "list", "--status", "failed", "--status", "done", *ws]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    assert ddae(["runs", "tag", TRAIN, "baseline", "paper", *ws]) == 0
    assert capsys.readouterr().out == f"{TRAIN}: tags baseline, paper\n"
    assert ddae(["runs", "list", "--tag", "paper", *ws]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == [TRAIN]
    assert ddae(["runs", "list", "--status", "bogus", *ws]) == 2
    assert capsys.readouterr().err == ("error: Unknown status 'bogus'; use one of queued, running, done, failed, "
                                       "cancelled, interrupted.\n")


def test_runs_show_export_tag_note(scripted, tmp_path, capsys):
    ws = ["--workspace", str(scripted)]
    assert ddae(["runs", "show", PROBE[:22], *ws]) == 0
    shown = capsys.readouterr().out
    assert f"run       {PROBE}\n" in shown and "status    done\n" in shown
    assert f"parent    {TRAIN}, checkpoint latest\n" in shown
    assert "probe grid: best cell out_6 at t=11: 87.4% (3 cells)" in shown
    assert ["probe/accuracy", "1", "0.874", "0", "0.874", "0"] in [line.split() for line in shown.splitlines()]
    assert ddae(["runs", "show", BROKEN, *ws]) == 0
    assert "error     The disk is full.\n" in capsys.readouterr().out
    assert ddae(["runs", "show", TRAIN, *ws]) == 0
    shown = capsys.readouterr().out
    assert ["checkpoint", "50", "checkpoints/step_000050.pt"] in [line.split() for line in shown.splitlines()]
    assert f"  {PROBE}  probe  done  its probe" in shown
    # The train run's headline is its probe's grid, protocol and baselines, and names that grid.
    assert f"headline  best probe cell 87.4% (fast), +77.4 / +57.4 over raw pixels / random init (grid {PROBE})" \
        in shown

    assert ddae(["runs", "export", TRAIN, "--csv", str(tmp_path / "out"), *ws]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "out" / "loss_train.csv"), str(tmp_path / "out" / "lr.csv")]
    rows = (tmp_path / "out" / "loss_train.csv").read_text().splitlines()
    assert rows[0] == "step,value,time" and rows[1] == "0,1.0,1000.0" and len(rows) == 6

    assert ddae(["runs", "tag", TRAIN, "a", "b", *ws]) == 0
    assert ddae(["runs", "tag", TRAIN, "a", "--remove", *ws]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{TRAIN}: tags b"
    assert ddae(["runs", "note", TRAIN, "lr too high?", *ws]) == 0
    meta = json.loads((scripted / "runs" / TRAIN / "meta.json").read_text())
    assert meta["tags"] == ["b"] and meta["notes"] == "lr too high?"


def test_unknown_runs_and_bad_requests_get_one_sentence_and_exit_2(scripted, capsys):
    ws = ["--workspace", str(scripted)]
    for command in (["runs", "show", "nope"], ["runs", "export", "nope", "--csv", "x"], ["queue", "cancel", "nope"],
                    ["queue", "resume", "nope"], ["queue", "priority", "nope", "3"], ["runs", "delete", "nope"]):
        assert ddae([*command, *ws]) == 2, command
        err = capsys.readouterr().err
        assert err == f"error: No run 'nope' in {scripted}; give a run id, a unique prefix of one, or a run's exact name.\n"
    assert ddae(["queue", "cancel", TRAIN, *ws]) == 2
    assert capsys.readouterr().err == f"error: Run {TRAIN} is done, so there is nothing to cancel.\n"
    assert ddae(["queue", "priority", TRAIN, "3", *ws]) == 2
    assert "not queued" in capsys.readouterr().err


def test_runs_delete_asks_refuses_a_running_run_and_removes_the_folder(scripted, capsys):
    ws = ["--workspace", str(scripted)]
    live = write_run(scripted, "20261126-130300-train-0004", events=[
        status("running", t=time.time(), pid=os.getpid(), host=socket.gethostname())]).name
    assert ddae(["runs", "delete", live, "--yes", *ws]) == 2
    assert capsys.readouterr().err == f"error: Run {live} is running; cancel it first (`ddae queue cancel {live}`).\n"
    assert ddae(["runs", "delete", BROKEN, *ws]) == 2               # stdin is not a terminal: no silent delete
    assert "add --yes" in capsys.readouterr().err and (scripted / "runs" / BROKEN).is_dir()
    assert ddae(["runs", "delete", BROKEN, "--yes", *ws]) == 0
    assert capsys.readouterr().out == f"deleted {BROKEN} and {scripted / 'runs' / BROKEN}\n"
    assert not (scripted / "runs" / BROKEN).exists()
    assert ddae(["runs", "list", *ws]) == 0
    assert BROKEN not in capsys.readouterr().out


def test_a_priority_the_index_cannot_hold_is_refused_before_any_run_folder(workspace, capsys):
    ws = ["--workspace", str(workspace)]
    huge = "99999999999999999999999"
    assert ddae(["train", "--preset", "tiny-ddpm", "--data", MICRO_DATA, "--steps", "2", "--queue",
                 "--priority", huge, *ws]) == 2
    assert capsys.readouterr().err == f"error: --priority must be from -1000000000 to 1000000000 (got {huge}).\n"
    assert list((workspace / "runs").iterdir()) == []
    assert ddae(["train", "--preset", "tiny-ddpm", "--data", MICRO_DATA, "--queue", "--gpus", huge, *ws]) == 2
    assert capsys.readouterr().err == f"error: --gpus must be from 0 to 1024 (got {huge}).\n"
    with Store.open(workspace) as store:
        run = queue_job(store, micro_train_spec())
    assert ddae(["queue", "priority", run, huge, *ws]) == 2
    assert ddae(["queue", "resume", run, "--priority", f"-{huge}", *ws]) == 2
    assert "--priority must be from" in capsys.readouterr().err


def test_one_run_folder_the_index_cannot_hold_is_skipped_with_a_warning(scripted, capsys, caplog):
    """A hand-edited priority used to crash every later list, show, delete and reindex of the workspace."""
    ws = ["--workspace", str(scripted)]
    bad = write_run(scripted, "20261126-130300-train-0004", queue={"priority": 10**23})
    meta_bad = write_run(scripted, "20261126-130400-train-0005", queue={"priority": 1})
    (meta_bad / "meta.json").write_text('{"priority": 1e999}')         # JSON's Infinity: int() overflows
    for command in (["runs", "list"], ["runs", "show", TRAIN], ["queue", "list"], ["reindex"],
                    ["runs", "delete", BROKEN, "--yes"], ["runs", "list"]):
        caplog.clear()
        assert ddae([*command, *ws]) == 0, command
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any(w.startswith(f"Not indexing run {bad.name}: {bad / 'spec.yaml'}: A queue priority must be a "
                                "whole number from -1000000000 to 1000000000 (got 1") for w in warnings), warnings
        assert any(f"{meta_bad / 'meta.json'}: A queue priority" in w for w in warnings), warnings
        out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[1:]] == [PROBE, TRAIN]      # the last `runs list`
    assert not (scripted / "studio.sqlite.new").exists()


def test_queue_list_priority_cancel_resume(workspace, capsys):
    ws = ["--workspace", str(workspace)]
    with Store.open(workspace) as store:
        first = queue_job(store, micro_train_spec(name="first"))
        second = queue_job(store, micro_train_spec(name="second", device="auto", gpus=2))
    assert ddae(["queue", "priority", "second", "5", *ws]) == 0           # by name
    assert capsys.readouterr().out == f"{second}: priority 5\n"
    assert ddae(["queue", "list", *ws]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "scheduler: not running (`ddae queue serve` or the app runs the queue)"
    assert lines[1].split()[:8] == ["RUN", "STATUS", "PROGRESS", "DEVICE", "PRIORITY", "ELAPSED", "ETA", "NAME"]
    assert lines[2].split()[:7] == [second, "queued", "-", "auto", "x2", "GPU", "5"]
    assert lines[3].split()[:5] == [first, "queued", "-", "cpu", "0"]

    assert ddae(["queue", "cancel", second, *ws]) == 0
    assert capsys.readouterr().out == f"{second}: cancelled (it had not started)\n"
    assert ddae(["queue", "resume", second, "--gpus", "1", *ws]) == 0
    assert capsys.readouterr().out == f"{second}: queued (priority 5); it runs from the start when a slot is free\n"
    with Store.open(workspace) as store:
        assert [(e.run, e.gpus) for e in store.queued_jobs()] == [(second, 1), (first, 0)]
    assert ddae(["queue", "list", "--all", *ws]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


def test_reindex_while_the_scheduler_indexes_is_done_by_the_scheduler(workspace, capsys):
    import threading

    rid = "20261126-130000-train-0001"
    write_run(workspace, rid, events=[status("done")])
    stop = threading.Event()
    with Scheduler(workspace, gpus=[]) as scheduler:
        serving = threading.Thread(target=scheduler.serve, args=(stop, 0.05))
        serving.start()
        try:
            assert ddae(["reindex", "--workspace", str(workspace)]) == 0
        finally:
            stop.set()
            serving.join(10)
    holder = f"pid {os.getpid()} on {socket.gethostname()}"
    assert capsys.readouterr().out == (f"{holder} rebuilt the index of {workspace} from its run folders: 1 run "
                                       "(the old index is kept as studio.sqlite.old)\n")
    assert (workspace / "studio.sqlite.old").is_file()
    with Store.open(workspace) as store:
        assert store.get_run(rid).status == "done"


def test_train_queue_then_serve_once_runs_a_tiny_ddpm_job_headless(workspace, tmp_path):
    """`ddae train --queue`, then `ddae queue serve --once`: the tiny-ddpm preset's network trains to done."""
    from ddae_core.engine.config import load_config

    config = load_config("tiny-ddpm")
    config["studio"].update(sample_steps=2)          # the preset's final 36-image, 25-step sample takes long
    config["n_sample"] = 4
    (tmp_path / "tiny-ddpm.yaml").write_text(yaml.safe_dump(config))
    ws = ["--workspace", str(workspace)]
    out = cli("train", "--config", str(tmp_path / "tiny-ddpm.yaml"), "--data", MICRO_DATA, "--data-limit", "64",
              "--steps", "3", "--batch-size", "8", "--queue", "--priority", "2", *ws)
    assert out.returncode == 0, out.stderr
    run = out.stdout.split()[1]
    assert out.stdout == f"queued {run} (priority 2); `ddae queue serve` or the app runs it\n"

    out = cli("queue", "serve", "--once", "--gpus", "none", "--interval", "0.2", *ws, timeout=150)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        f"scheduler of {workspace}: slots cpu0; Ctrl-C stops it, running jobs keep running",
        f"started {run} on cpu0",                    # auto with a GPU asked for, on a machine without one
        f"finished {run}: done",
        "scheduler stopped",
    ]
    with Store.open(workspace) as store:
        record = store.get_run(run)
        assert record.status == "done" and record.progress_done == 3
        assert [a.step for a in store.artifacts(run, "checkpoint")] == [3]


def test_serve_stops_on_sigterm_leaving_its_worker_running(workspace):
    with Store.open(workspace) as store:
        run = queue_job(store, micro_train_spec(steps=500, checkpoint_every=1000))
    serve = subprocess.Popen([sys.executable, "-m", "ddae_core.cli", "queue", "serve", "--gpus", "none",
                              "--interval", "0.2", "--workspace", str(workspace)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stdout.readline().startswith("scheduler of ")
        assert serve.stdout.readline() == f"started {run} on cpu0\n"
        serve.send_signal(signal.SIGTERM)
        out, err = serve.communicate(timeout=30)
    finally:
        serve.kill()
        serve.wait()
    assert serve.returncode == 0, err
    assert out == f"scheduler stopped; 1 job(s) keep running: {run}\n"
    with Store.open(workspace) as store:
        pid = store.get_run(run).pid
        worker = psutil.Process(pid)
        assert worker.is_running()
        # A new scheduler (the app, opened later) takes the running worker over, and can cancel it.
        with Scheduler(workspace, store, gpus=[]) as scheduler:
            scheduler.tick()
            assert scheduler.running() == {run: ("cpu0",)}
            tick_until(scheduler, lambda: store.get_run(run).progress_done, 60)
            queue_ops.cancel(store, workspace, run)
            tick_until(scheduler, lambda: store.get_run(run).status == "cancelled", 60)
    psutil.wait_procs([worker], timeout=15)
    assert not worker.is_running()
