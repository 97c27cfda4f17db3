"""The queue on Slurm: profiles and job shapes (always), and real jobs on a real Slurm (marked `slurm`).

The `slurm` tests need a cluster whose nodes share this machine's file system: `.ci/slurm-test-cluster.sh
start` brings up a one-node one on this machine (SLURM_CONF=/tmp/ddae-slurm/slurm.conf, set here when
that file exists). Without one they skip with the reason. They submit a tiny training and a probe grid
through the queue, cancel one pending and one running job, kill one's worker with SIGKILL, resume, and
check what the database says.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from db import Store
from ddae_core.engine.errors import UserError
from ddae_core.jobs import queue_ops, slurm
from ddae_core.jobs.cluster import (
    ClusterProfile,
    check_placement,
    load_profiles,
    parse_time_limit,
    profile_from_dict,
    read_slurm,
    save_profiles,
    set_run_cluster,
)
from ddae_core.jobs.slurm_job import hostnames, rendezvous_env

from .fixtures import micro_train_spec

TEST_CLUSTER_CONF = Path(os.environ.get("DDAE_SLURM_DIR", "/tmp/ddae-slurm")) / "slurm.conf"


# Profiles, shapes and the rendezvous: no Slurm needed.
def test_profiles_round_trip_and_bad_fields_are_named(tmp_path):
    profile = profile_from_dict("a100", {"partition": "gpu", "account": "lab", "time_limit": "1-02:00:00",
                                         "gpus_per_node": 4, "cpus_per_gpu": 8, "mem_per_gpu": "64G", "nodes": 2,
                                         "sbatch": ["#SBATCH --exclusive", "--mail-type=END"],
                                         "setup": "module load cuda\nsource venv/bin/activate"})
    assert profile.time_limit_min == 26 * 60
    assert profile.sbatch == ["--exclusive", "--mail-type=END"]
    assert profile.setup == ["module load cuda", "source venv/bin/activate"]
    save_profiles(tmp_path, {"a100": profile})
    assert load_profiles(tmp_path) == {"a100": profile}
    assert check_placement(tmp_path, "a100") == "a100" and check_placement(tmp_path, "local") is None
    with pytest.raises(UserError, match="No cluster profile 'b'.*a100"):
        check_placement(tmp_path, "b")
    with pytest.raises(UserError, match="unknown field 'gpu'"):
        profile_from_dict("x", {"gpu": 1})
    with pytest.raises(UserError, match="gpus_per_node must be a whole number"):
        profile_from_dict("x", {"gpus_per_node": -1})
    with pytest.raises(UserError, match="time_limit 'soon'"):
        profile_from_dict("x", {"time_limit": "soon"})
    with pytest.raises(UserError, match="must be a long option"):
        profile_from_dict("x", {"sbatch": ["exclusive"]})
    # The workspace's default placement: where --queue sends a job unless --cluster says otherwise.
    assert check_placement(tmp_path, None) is None
    save_profiles(tmp_path, {"a100": profile}, default="a100")
    assert check_placement(tmp_path, None) == "a100" and check_placement(tmp_path, "local") is None
    (tmp_path / "cluster.yaml").write_text("default: b\nprofiles: {a100: {}}\n")
    with pytest.raises(UserError, match="default 'b' is not one of its profiles"):
        check_placement(tmp_path, None)
    assert parse_time_limit("90") == 90 and parse_time_limit("01:30:00") == 90 and parse_time_limit("2-0") == 2880


def test_job_shapes_one_task_per_gpu_for_training_across_nodes():
    profile = ClusterProfile("c", gpus_per_node=4, nodes=2, cpus_per_gpu=6, mem_per_gpu="40G")
    assert slurm.job_shape(profile, 0, "train") == slurm.Shape(1, 1, 0, False)
    assert slurm.job_shape(profile, 2, "train") == slurm.Shape(1, 2, 2, True)
    assert slurm.job_shape(profile, 8, "train") == slurm.Shape(2, 4, 4, True)
    assert slurm.job_shape(profile, 2, "probe") == slurm.Shape(1, 1, 2, False)
    with pytest.raises(UserError, match="need 3 nodes"):
        slurm.job_shape(profile, 12, "train")
    with pytest.raises(UserError, match="multiple of 4"):
        slurm.job_shape(profile, 6, "train")
    params = slurm.sbatch_parameters(profile, slurm.job_shape(profile, 8, "train"), "ddae-x")
    assert params["nodes"] == 2 and params["ntasks_per_node"] == 4 and params["gpus_per_node"] == 4
    assert params["cpus_per_task"] == 6 and params["mem_per_gpu"] == "40G"
    assert params["additional_parameters"]["requeue"] is True


def test_rendezvous_comes_from_slurms_environment():
    env = {"SLURM_NTASKS": "8", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_ID": "1234", "SLURM_PROCID": "5",
           "SLURM_LOCALID": "1", "SLURM_JOB_NODELIST": "gpu[07-08]"}
    assert rendezvous_env(env) == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4",
                                   "MASTER_ADDR": "gpu07", "MASTER_PORT": "21234"}
    assert hostnames("n[1-2],gpu[09-10,12],login") == ["n1", "n2", "gpu09", "gpu10", "gpu12", "login"]


# Real Slurm.
@functools.lru_cache(maxsize=1)
def _slurm_problem() -> str | None:
    """Why the slurm tests cannot run here, or None (asked once per session: a missing controller costs
    sinfo's timeout)."""
    if not os.environ.get("SLURM_CONF") and TEST_CLUSTER_CONF.is_file():
        os.environ["SLURM_CONF"] = str(TEST_CLUSTER_CONF)
    if not slurm.available():
        return "Slurm's commands (sbatch, squeue, scancel) are not installed; .ci/slurm-test-cluster.sh start"
    try:
        import submitit  # noqa: F401
    except ImportError:
        return "submitit is not installed (pip install -e '.[slurm]')"
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 10 s: no Slurm controller is up (.ci/slurm-test-cluster.sh start)"
    states = done.stdout.split()
    if done.returncode != 0 or not any(s.rstrip("*~#") in ("idle", "mix", "alloc", "comp", "plnd") for s in states):
        said = (done.stderr or done.stdout).strip().splitlines()
        return f"no Slurm node is up ({said[-1] if said else 'sinfo lists none'}); .ci/slurm-test-cluster.sh start"
    return None


@pytest.fixture
def cluster(workspace):
    """A workspace with the profile `test` (one CPU a job, this interpreter), and its jobs scancelled after."""
    problem = _slurm_problem()
    if problem:
        pytest.skip(problem)
    save_profiles(workspace, {"test": profile_from_dict("test", {
        "time_limit": "00:15:00", "cpus": 1, "python": sys.executable,
        "setup": ["export OMP_NUM_THREADS=1", "export OMP_WAIT_POLICY=PASSIVE"]})})
    with Store.open(workspace) as store:
        yield store
    for run_dir in (workspace / "runs").iterdir():
        for job in read_slurm(run_dir).get("jobs", []):
            subprocess.run(["scancel", job["job_id"]], capture_output=True)


def _queue_on(store: Store, spec: dict, cluster: str = "test") -> str:
    from ddae_core.jobs.specs import create_job

    gpus = spec["device"]["gpus"]
    run_dir = create_job(store.workspace, spec, queue={"priority": 0, "gpus": gpus})
    set_run_cluster(run_dir, cluster)
    store.register_run(run_dir)
    store.enqueue(run_dir.name, priority=0, gpus=gpus, device_request=spec["device"]["request"])
    return run_dir.name


def _until(scheduler, done, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        scheduler.tick()
        time.sleep(0.5)


def _status(store, run_id) -> str:
    return store.get_run(run_id).status


def _log(store, run_id) -> str:
    path = store.run_dir(run_id) / "log.txt"
    return path.read_text(errors="replace") if path.exists() else ""


@pytest.mark.slurm
def test_slurm_trains_then_probes_a_grid_with_curves_in_the_database(cluster):
    from ddae_core.jobs.eval_specs import probe_spec
    from ddae_core.jobs.scheduler import Scheduler

    store = cluster
    # device auto asking for one GPU, on a profile without GPUs: a CPU job, as on a machine without GPUs.
    train = _queue_on(store, micro_train_spec(steps=8, checkpoint_every=4, device="auto", gpus=1))
    with Scheduler(store.workspace, store, cpu_slots=0, gpus=[]) as scheduler:
        report = scheduler.tick()
        assert [run for run, _ in report.started] == [train], report
        job_id = read_slurm(store.run_dir(train))["job_id"]
        assert store.get_run(train).device.startswith(f"slurm test job {job_id}")
        rows = queue_ops_rows(store, train)
        assert rows.job_id == job_id and rows.cluster == "test"
        _until(scheduler, lambda: _status(store, train) != "running", 240, "the Slurm training to end")
        assert _status(store, train) == "done", _log(store, train)[-2000:]
        assert len(store.metric_history(train, "loss/train").steps) == 8
        assert f"Slurm job {job_id}" in _log(store, train)

        probe = _queue_on(store, probe_spec(store.run_dir(train), timesteps="11,51", layers="out_1,out_3",
                                            train_limit=64, test_limit=48, epochs=1, device="cpu", baselines=False))
        _until(scheduler, lambda: _status(store, probe) not in ("queued", "running"), 240, "the Slurm probe grid")
        assert _status(store, probe) == "done", _log(store, probe)[-2000:]
        assert len(store.grid_cells(probe)) == 4


def queue_ops_rows(store, run_id):
    from ddae_core.jobs.cluster_backend import cluster_jobs

    return cluster_jobs(store.workspace, [run_id])[run_id]


@pytest.mark.slurm
def test_slurm_cancel_pending_and_running_kill_9_is_interrupted_and_resume_continues(cluster):
    from ddae_core.jobs.scheduler import Scheduler

    store = cluster
    # A job Slurm holds back (--begin in an hour): cancelled at once, never started.
    profiles = load_profiles(store.workspace)
    profiles["later"] = profile_from_dict("later", {**profiles["test"].to_yaml_dict(), "sbatch": ["--begin=now+3600"]})
    save_profiles(store.workspace, profiles)
    held = _queue_on(store, micro_train_spec(steps=8), cluster="later")
    long = _queue_on(store, micro_train_spec(steps=2000, checkpoint_every=5))
    with Scheduler(store.workspace, store, cpu_slots=0, gpus=[], kill_timeout_s=120) as scheduler:
        scheduler.tick()
        assert _status(store, held) == "running" and _status(store, long) == "running"
        held_job = read_slurm(store.run_dir(held))["job_id"]
        _until(scheduler, lambda: "PENDING" in (queue_ops_rows(store, held).state or ""), 30, "the held job pending")
        assert "BeginTime" in queue_ops_rows(store, held).state
        _until(scheduler, lambda: store.get_run(held).progress_stage == "Slurm: PENDING (BeginTime)", 10,
               "the pending reason as the held run's stage")
        assert queue_ops.cancel(store, store.workspace, held) == f"cancelled (Slurm job {held_job} had not started)"
        assert _status(store, held) == "cancelled"

        # Running: cancel -> the worker saves a checkpoint and exits cancelled; resume continues from it.
        def checkpoints(run_id):
            return sorted((store.run_dir(run_id) / "checkpoints").glob("step_*.pt"))

        _until(scheduler, lambda: len(checkpoints(long)) >= 1, 240, "a checkpoint of the Slurm training")
        assert "stop requested (scancel --signal=TERM" in queue_ops.cancel(store, store.workspace, long)
        _until(scheduler, lambda: _status(store, long) != "running", 120, "the cancelled Slurm job to stop")
        assert _status(store, long) == "cancelled", _log(store, long)[-2000:]
        saved = checkpoints(long)[-1].name
        first_job = read_slurm(store.run_dir(long))["job_id"]

        queue_ops.resume(store, store.workspace, long)
        _until(scheduler, lambda: _worker_pid(store, long) is not None, 240, "the resumed worker to start")
        assert read_slurm(store.run_dir(long))["job_id"] != first_job
        events = (store.run_dir(long) / "events.jsonl").read_text()
        assert f'"resumed_from":{int(saved[5:11])}' in events.replace(" ", "")

        # kill -9 of the worker on the node -> interrupted; resume again.
        os.kill(_worker_pid(store, long), signal.SIGKILL)
        _until(scheduler, lambda: _status(store, long) != "running", 120, "the killed worker to be noticed")
        assert _status(store, long) == "interrupted"
        queue_ops.resume(store, store.workspace, long)
        scheduler.tick()
        _until(scheduler, lambda: _worker_pid(store, long) is not None, 240, "the worker to start again")
        assert len(read_slurm(store.run_dir(long))["jobs"]) == 3
        queue_ops.cancel(store, store.workspace, long)
        _until(scheduler, lambda: _status(store, long) != "running", 120, "the last cancel")
        assert _status(store, long) == "cancelled"


def _worker_pid(store, run_id) -> int | None:
    """The pid of the run's worker once it runs on the node (this machine) and says so."""
    record = store.get_run(run_id)
    if record.status == "running" and record.pid and record.host == socket.gethostname():
        return record.pid
    return None


@pytest.mark.slurm
def test_cluster_check_says_what_slurm_thinks_of_a_profile(workspace, capsys):
    from ddae_core.cli import main

    problem = _slurm_problem()
    if problem:
        pytest.skip(problem)
    save_profiles(workspace, {"ok": ClusterProfile("ok", time_limit="10"),
                              "bad": ClusterProfile("bad", partition="no-such-partition")})
    assert main(["cluster", "check", "ok", "--workspace", str(workspace), "--submit", "--timeout", "120"]) == 0
    out = capsys.readouterr().out
    assert "sbatch --test-only: ok" in out and "workspace visible" in out
    assert main(["cluster", "check", "bad", "--workspace", str(workspace)]) == 1
    assert "sbatch --test-only: FAILED: sbatch refuses profile bad" in capsys.readouterr().out


@pytest.mark.slurm
def test_slurm_preemption_warning_saves_requeues_and_resumes_by_itself(cluster):
    """USR2 is what Slurm sends before a time limit or a preemption (submitit's --signal=USR2@90)."""
    from ddae_core.jobs.scheduler import Scheduler

    store = cluster
    run = _queue_on(store, micro_train_spec(steps=2000, checkpoint_every=5))
    with Scheduler(store.workspace, store, cpu_slots=0, gpus=[], kill_timeout_s=120) as scheduler:
        scheduler.tick()
        job_id = read_slurm(store.run_dir(run))["job_id"]
        _until(scheduler, lambda: any((store.run_dir(run) / "checkpoints").glob("step_*.pt")), 240,
               "a checkpoint of the Slurm training")
        first_pid = _worker_pid(store, run)
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
        _until(scheduler, lambda: _worker_pid(store, run) not in (None, first_pid), 240,
               "the requeued job's worker to start")
        events = (store.run_dir(run) / "events.jsonl").read_text().replace(" ", "")
        assert '"status":"interrupted"' in events and "isrequeued" in events.replace(" ", "")
        assert '"resumed_from":' in events
        assert read_slurm(store.run_dir(run))["job_id"] == job_id            # the same job, requeued
        queue_ops.cancel(store, store.workspace, run)
        _until(scheduler, lambda: _status(store, run) != "running", 120, "the cancel")
        assert _status(store, run) == "cancelled"


@pytest.mark.slurm
def test_cli_train_queue_cluster_then_serve_once_and_queue_list(cluster, tmp_path):
    """`ddae train --queue --cluster test`, `ddae queue list` (the Slurm column), `ddae queue serve --once`."""
    import yaml

    from .fixtures import MICRO_DATA, micro_config
    from .test_queue_cli import cli

    workspace = cluster.workspace
    config = micro_config()
    config["studio"].update(sample_steps=2)
    config["n_sample"] = 4
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    ws = ["--workspace", str(workspace)]
    out = cli("train", "--config", str(tmp_path / "tiny.yaml"), "--data", MICRO_DATA, "--data-limit", "64",
              "--steps", "3", "--batch-size", "8", "--device", "cpu", "--queue", "--cluster", "test", *ws)
    assert out.returncode == 0, out.stderr
    run = out.stdout.split()[1]
    assert out.stdout.startswith(f"queued {run} for cluster test (priority 0)")
    assert "SLURM" in (listing := cli("queue", "list", *ws).stdout) and "test: not submitted yet" in listing
    bad = cli("train", "--config", str(tmp_path / "tiny.yaml"), "--queue", "--cluster", "nope", *ws)
    assert bad.returncode == 2 and "No cluster profile 'nope'" in bad.stderr

    out = cli("queue", "serve", "--once", "--gpus", "none", "--cpu-slots", "0", "--interval", "0.5", *ws, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    job_id = read_slurm(workspace / "runs" / run)["job_id"]
    lines = out.stdout.splitlines()
    assert f"started {run} on slurm test job {job_id}" in lines and f"finished {run}: done" in lines, lines
    listing = cli("queue", "list", "--all", *ws).stdout
    assert f"test job {job_id}" in listing


@pytest.mark.slurm
def test_a_run_on_another_node_whose_slurm_job_is_gone_is_interrupted(cluster, monkeypatch):
    """On a real cluster the worker's host is a node, so only squeue can tell that it is gone."""
    from ddae_core.jobs import cluster_backend
    from ddae_core.jobs.cluster import record_submission
    from ddae_core.jobs.scheduler import Scheduler
    from ddae_core.jobs.worker_process import append_event

    store = cluster
    monkeypatch.setattr(cluster_backend, "GONE_GRACE_S", 0.0)
    run = _queue_on(store, micro_train_spec(steps=8))
    run_dir = store.run_dir(run)
    store.dequeue(run)
    record_submission(run_dir, "test", "999999")                  # a job id squeue has never heard of
    append_event(run_dir, "status", status="running", pid=4242, host="node17", device="cpu")
    moved = _queue_on(store, micro_train_spec(steps=8))             # resumed here with --cluster local
    store.dequeue(moved)
    record_submission(store.run_dir(moved), "test", "999998")
    set_run_cluster(store.run_dir(moved), None)
    append_event(store.run_dir(moved), "status", status="running", pid=4243, host="node18", device="cpu")
    with Scheduler(store.workspace, store, cpu_slots=0, gpus=[]) as scheduler:
        report = scheduler.tick()
    assert report.interrupted == (run,)
    record = store.get_run(run)
    assert record.status == "interrupted" and "Slurm job 999999 ended (no longer in squeue)" in record.error
    assert store.get_run(moved).status == "running"                  # not Slurm's to judge any more


@pytest.mark.slurm
def test_ddp_rendezvous_from_slurm_two_ranks_on_the_cpu(cluster, monkeypatch):
    """The multi-GPU path's rendezvous, as far as one CPU node allows: two Slurm tasks, two gloo ranks
    whose RANK/WORLD_SIZE/MASTER_ADDR come from Slurm's environment, rank 0 alone reporting."""
    from ddae_core.engine.spec.run_spec import TrainSettings
    from ddae_core.engine.training import lr_at
    from ddae_core.jobs.scheduler import Scheduler

    if (os.cpu_count() or 1) < 2:
        pytest.skip("two Slurm tasks of one CPU each need a node with two CPUs")
    store = cluster
    monkeypatch.setattr(slurm, "job_shape", lambda profile, gpus, kind: slurm.Shape(1, 2, 0, True))
    steps = 4
    run = _queue_on(store, micro_train_spec(steps=steps, checkpoint_every=2))
    with Scheduler(store.workspace, store, cpu_slots=0, gpus=[]) as scheduler:
        _until(scheduler, lambda: _status(store, run) not in ("queued", "running"), 240, "the two-rank Slurm job")
    run_dir = store.run_dir(run)
    assert _status(store, run) == "done", (run_dir / "log.txt").read_text()[-3000:]
    assert list(store.metric_history(run, "loss/train").steps) == list(range(1, steps + 1))
    lr = store.metric_history(run, "lr").values[-1]
    opts = TrainSettings.model_validate(json.loads(json.dumps(micro_train_spec(steps=steps)["options"])))
    assert lr == pytest.approx(2 * lr_at(steps - 1, 0, opts, steps))      # two ranks: the lr scales by 2
    assert "(rank 0 of 2)" in (run_dir / "log.txt").read_text()
    assert "(rank 1 of 2)" in (run_dir / "log.rank1.txt").read_text()


@pytest.mark.slurm
def test_a_cancelled_job_on_another_node_that_does_not_stop_is_scancelled_after_the_timeout(cluster, monkeypatch):
    from ddae_core.engine.reporting import STOP_FILE
    from ddae_core.jobs import cluster_backend
    from ddae_core.jobs.cluster import record_submission
    from ddae_core.jobs.scheduler import Scheduler
    from ddae_core.jobs.worker_process import append_event

    store = cluster
    monkeypatch.setattr(cluster_backend, "GONE_GRACE_S", 0.0)
    run = _queue_on(store, micro_train_spec(steps=8))
    run_dir = store.run_dir(run)
    store.dequeue(run)
    # A job that ignores the stop request: a plain sleep, standing in for a stuck worker on a node.
    out = subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "sleep 300"], capture_output=True,
                         text=True, check=True)
    job_id = out.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 60
    while (job := slurm.query(fresh=True).get(job_id)) is None or job.state != "RUNNING":
        assert time.monotonic() < deadline, f"the sleep job did not start: {job}"
        time.sleep(0.5)
    record_submission(run_dir, "test", job_id)
    append_event(run_dir, "status", status="running", pid=4242, host="node17", device="cpu")
    (run_dir / STOP_FILE).touch()
    with Scheduler(store.workspace, store, cpu_slots=0, gpus=[], kill_timeout_s=0.5) as scheduler:
        time.sleep(0.6)
        report = scheduler.tick()
        assert report.killed == (run,) and _status(store, run) == "running", report
        _until(scheduler, lambda: _status(store, run) != "running", 60, "the stuck job to be scancelled")
    record = store.get_run(run)
    assert record.status == "cancelled" and f"Slurm job {job_id} ended" in record.error
    assert slurm.query(fresh=True).get(job_id) is None or not slurm.query(fresh=True)[job_id].live


def test_queue_goes_to_the_workspace_default_cluster_unless_told_local(workspace):
    from .fixtures import MICRO_DATA
    from .test_queue_cli import cli

    save_profiles(workspace, {"test": ClusterProfile("test")}, default="test")
    ws = ["--workspace", str(workspace)]
    args = ["train", "--preset", "tiny-ddpm", "--data", MICRO_DATA, "--steps", "2", "--device", "cpu", "--queue"]
    out = cli(*args, *ws)
    assert out.returncode == 0, out.stderr
    run = out.stdout.split()[1]
    assert "for cluster test" in out.stdout and read_slurm(workspace / "runs" / run) == {"cluster": "test"}
    out = cli(*args, "--cluster", "local", *ws)
    assert out.returncode == 0 and "for cluster" not in out.stdout
    assert read_slurm(workspace / "runs" / out.stdout.split()[1]) == {}
    out = cli(*args[:-1], "--cluster", "test", *ws)
    assert out.returncode == 2 and "--cluster needs --queue" in out.stderr
    assert "[default: queued jobs go here" in cli("cluster", "list", *ws).stdout
