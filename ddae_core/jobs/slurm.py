"""The Slurm client of the queue: submit a run's worker through submitit, read squeue, scancel.

Job state comes from the run directory first (its events) and from `squeue` for pending/running and the
reason; `sacct` is never needed (many clusters, and test clusters, have no accounting). squeue is read
once per call for all of a user's jobs and cached for a few seconds, so a Queue view that refreshes
every second does not hammer slurmctld. No database, no Qt.
"""

from __future__ import annotations

import getpass
import math
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..engine.errors import UserError
from ..rundir import DDP_KINDS, SLURM_DIR, JobKind
from .cluster import ClusterProfile, record_submission

SQUEUE_CACHE_S = 3.0
SQUEUE_FORMAT = "%i|%T|%r|%N|%M|%l"
LIVE_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
               "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD")
SUBMITIT_DIR = SLURM_DIR        # submitit's pickles and its own logs, inside the run directory
ARRAYS_DIR = "slurm-arrays"     # ... of a job array (a sweep's runs), in the workspace: its elements share them


class SlurmError(UserError):
    """A Slurm command failed or is missing; str() says which and what to do."""


@dataclass(frozen=True, slots=True)
class SlurmJobState:
    """One job as squeue shows it."""

    job_id: str
    state: str                      # PENDING, RUNNING, COMPLETING, ...
    reason: str                     # Priority, Resources, None, ...
    nodes: str                      # the node list ('' while pending)
    elapsed: str                    # squeue's TIME, e.g. 1:02:03
    time_limit: str                 # squeue's TIME_LIMIT, e.g. 14:00:00

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    def label(self) -> str:
        """`PENDING (Priority)`, `RUNNING`."""
        return f"{self.state} ({self.reason})" if self.reason and self.reason != "None" else self.state


def available() -> bool:
    """True when sbatch, squeue and scancel are on PATH."""
    return all(shutil.which(cmd) for cmd in ("sbatch", "squeue", "scancel"))


def _run(cmd: list[str], timeout: float = 30) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SlurmError(f"`{cmd[0]}` is not installed here; the queue needs Slurm's commands on this "
                         "machine to use a cluster profile.") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{' '.join(cmd)}` did not answer within {timeout:g} s; is slurmctld up?") from None
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise SlurmError(f"`{' '.join(cmd[:2])}` failed: {message[-1] if message else f'exit {done.returncode}'}")
    return done.stdout


_cache: tuple[float, dict[str, SlurmJobState]] | None = None


def query(fresh: bool = False) -> dict[str, SlurmJobState]:
    """This user's jobs in squeue by id (pending, running and those just ended); SlurmError if it fails."""
    global _cache
    now = time.monotonic()
    if not fresh and _cache is not None and now - _cache[0] < SQUEUE_CACHE_S:
        return _cache[1]
    # -r: one line per element of a job array (a sweep's), each by its own id 123_4, as slurm.json names it.
    text = _run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-t", "all", "-o", SQUEUE_FORMAT])
    jobs = {}
    for line in text.splitlines():
        cols = line.split("|")
        if len(cols) != 6:
            continue
        job = SlurmJobState(*[c.strip() for c in cols])
        jobs[job.job_id] = job
    _cache = (now, jobs)
    return jobs


def forget_cache() -> None:
    global _cache
    _cache = None


def cancel(job_id: str, signal_name: str | None = None) -> None:
    """scancel the job: with signal_name (e.g. TERM) only its steps get that signal (the worker saves
    and exits cancelled); without, Slurm ends the job (TERM, then KILL after KillWait)."""
    cmd = ["scancel", *([f"--signal={signal_name}"] if signal_name else []), str(job_id)]
    _run(cmd)
    forget_cache()


# Submitting.
def node_python(profile: ClusterProfile) -> str:
    """The interpreter the job starts on its node: the profile's `python`, else the one running the queue."""
    return profile.python or sys.executable


def executor(folder: Path, profile: ClusterProfile, **options):
    """submitit's SlurmExecutor writing into `folder`, its interpreter quoted: submitit puts `python` into the
    job's shell script as it is (one program, checked by the profile; a path with a space or `$` stays one)."""
    try:
        import submitit
    except ImportError:
        raise UserError("Running on a cluster needs submitit: pip install -e '.[slurm]'.") from None
    try:
        return submitit.SlurmExecutor(folder=folder, python=shlex.quote(node_python(profile)), **options)
    except RuntimeError as exc:     # submitit's own check that this is a Slurm machine (srun on PATH)
        raise SlurmError(f"submitit cannot use Slurm here ({exc}); run the queue on a machine with Slurm's "
                         "commands.") from None


@dataclass(frozen=True, slots=True)
class Shape:
    """How a job is laid out on the cluster."""

    nodes: int
    tasks_per_node: int
    gpus_per_node: int
    distributed: bool


def job_shape(profile: ClusterProfile, gpus: int, kind: str) -> Shape:
    """Nodes, tasks and GPUs for a job asking for `gpus` GPUs; UserError if the profile cannot hold it.

    Training asks for one task per GPU (DDP, across nodes when it needs more GPUs than a node has);
    other kinds run as one task with all their GPUs on one node.
    """
    if gpus <= 0:
        return Shape(1, 1, 0, False)
    if not profile.gpus_per_node:
        raise UserError(f"The job asks for {gpus} GPU{'s' if gpus > 1 else ''}, but cluster profile {profile.name} "
                        "has gpus_per_node 0; set it, or queue the job with --gpus 0.")
    if kind not in DDP_KINDS or gpus <= profile.gpus_per_node:
        if gpus > profile.gpus_per_node:
            raise UserError(f"A {kind} job runs on one node, which has {profile.gpus_per_node} GPUs in profile "
                            f"{profile.name}; ask for at most that many.")
        return Shape(1, gpus if kind in DDP_KINDS else 1, gpus, kind in DDP_KINDS and gpus > 1)
    nodes = math.ceil(gpus / profile.gpus_per_node)
    if gpus % profile.gpus_per_node:
        raise UserError(f"{gpus} GPUs do not fill whole nodes of {profile.gpus_per_node} GPUs (profile "
                        f"{profile.name}); ask for a multiple of {profile.gpus_per_node}.")
    if nodes > profile.nodes:
        raise UserError(f"{gpus} GPUs need {nodes} nodes, but cluster profile {profile.name} allows {profile.nodes}; "
                        "raise its `nodes`, or ask for fewer GPUs.")
    return Shape(nodes, profile.gpus_per_node, profile.gpus_per_node, True)


def sbatch_parameters(profile: ClusterProfile, shape: Shape, job_name: str) -> dict:
    """submitit's SlurmExecutor parameters for the profile and shape (requeue on, stderr into stdout)."""
    extra: dict = {"requeue": True}
    for line in profile.sbatch:
        key, _, value = line.lstrip("-").partition("=")
        extra[key] = value if value else True
    # No PYTHONPATH: the nodes' python (the profile's, else this one) has ddae-studio installed.
    setup = ["export PYTHONUNBUFFERED=1", "unset DDAE_SLOTS"]
    if shape.gpus_per_node == 0:
        setup.append(f"export OMP_NUM_THREADS={profile.cpus}")
    setup += list(profile.setup)
    params: dict = dict(job_name=job_name, time=profile.time_limit_min, nodes=shape.nodes,
                        ntasks_per_node=shape.tasks_per_node, setup=setup, stderr_to_stdout=True,
                        additional_parameters=extra)
    for key in ("partition", "account", "qos", "constraint"):
        value = getattr(profile, key)
        if value:
            params[key] = value
    if shape.gpus_per_node:
        params["gpus_per_node"] = shape.gpus_per_node
        params["cpus_per_task"] = profile.cpus_per_gpu * (shape.gpus_per_node // shape.tasks_per_node)
        if profile.mem_per_gpu:
            params["mem_per_gpu"] = profile.mem_per_gpu
    else:
        params["cpus_per_task"] = profile.cpus
        if profile.mem:
            params["mem"] = profile.mem
    return params


def submit(run_dir: Path, profile: ClusterProfile, gpus: int, kind: str) -> tuple[str, Shape]:
    """Submit the run's worker to Slurm through submitit; its job id is noted in the run's slurm.json."""
    from .slurm_job import SlurmWorker

    run_dir = Path(run_dir)
    shape = job_shape(profile, gpus, kind)
    jobs = executor(run_dir / SUBMITIT_DIR, profile, max_num_timeout=profile.max_requeues)
    jobs.update_parameters(**sbatch_parameters(profile, shape, f"ddae-{run_dir.name}"))
    try:
        job = jobs.submit(SlurmWorker(str(run_dir), python=node_python(profile), distributed=shape.distributed))
    except Exception as exc:  # noqa: BLE001 - sbatch's refusal, in one sentence
        lines = str(exc).strip().splitlines()
        detail = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
        raise SlurmError(f"sbatch refused run {run_dir.name} on profile {profile.name}: {detail.strip()}") from None
    record_submission(run_dir, profile.name, job.job_id, nodes=shape.nodes, tasks_per_node=shape.tasks_per_node,
                      gpus_per_node=shape.gpus_per_node, time_limit=profile.time_limit)
    forget_cache()
    return str(job.job_id), shape


def submit_array(run_dirs: list[Path], profile: ClusterProfile, gpus: int, kind: str,
                 name: str) -> tuple[list[str], Shape]:
    """Submit the workers of several runs of one shape (a grid sweep's) as one Slurm job array through submitit;
    returns each run's job id (ARRAY_INDEX) in order, also noted in its slurm.json.

    submitit's pickles and logs of the array go to WORKSPACE/slurm-arrays/NAME (the elements share a folder);
    each worker still writes its run's log.txt, as a single job does.
    """
    from .slurm_job import SlurmWorker

    run_dirs = [Path(d) for d in run_dirs]
    shape = job_shape(profile, gpus, kind)
    folder = run_dirs[0].parent.parent / ARRAYS_DIR / f"{name}-{run_dirs[0].name}"
    jobs = executor(folder, profile, max_num_timeout=profile.max_requeues)
    jobs.update_parameters(**sbatch_parameters(profile, shape, f"ddae-{name}"), array_parallelism=len(run_dirs))
    try:
        with jobs.batch():
            handles = [jobs.submit(SlurmWorker(str(d), python=node_python(profile), distributed=shape.distributed))
                       for d in run_dirs]
    except Exception as exc:  # noqa: BLE001 - sbatch's refusal, in one sentence
        lines = str(exc).strip().splitlines()
        detail = next((line for line in reversed(lines) if "error" in line.lower()), lines[-1] if lines else "")
        raise SlurmError(f"sbatch refused the array of {len(run_dirs)} runs ({name}) on profile {profile.name}: "
                         f"{detail.strip()}") from None
    for run_dir, job in zip(run_dirs, handles):
        record_submission(run_dir, profile.name, job.job_id, nodes=shape.nodes, tasks_per_node=shape.tasks_per_node,
                          gpus_per_node=shape.gpus_per_node, time_limit=profile.time_limit, array=name)
    forget_cache()
    return [str(job.job_id) for job in handles], shape


def test_only(profile: ClusterProfile, gpus: int = 0, kind: str = JobKind.TRAIN) -> str:
    """`sbatch --test-only` with the profile's options: what Slurm says of them, without queueing a job."""
    shape = job_shape(profile, gpus, kind)
    params = sbatch_parameters(profile, shape, "ddae-check")
    flags = [f"--time={params['time']}", f"--nodes={shape.nodes}", f"--ntasks-per-node={shape.tasks_per_node}",
             f"--cpus-per-task={params['cpus_per_task']}"]
    for key in ("partition", "account", "qos", "constraint", "gpus_per_node", "mem_per_gpu", "mem"):
        if key in params:
            flags.append(f"--{key.replace('_', '-')}={params[key]}")
    for key, value in params["additional_parameters"].items():
        if key != "requeue":
            flags.append(f"--{key}" if value is True else f"--{key}={value}")
    try:
        done = subprocess.run(["sbatch", "--test-only", *flags, "--wrap", "true"], capture_output=True, text=True,
                              timeout=60)
    except FileNotFoundError:
        raise SlurmError("`sbatch` is not installed here.") from None
    except subprocess.TimeoutExpired:
        raise SlurmError("`sbatch --test-only` did not answer within 60 s; is slurmctld up?") from None
    text = (done.stderr + done.stdout).strip()
    if done.returncode != 0:
        raise SlurmError(f"sbatch refuses profile {profile.name}: {text.splitlines()[-1] if text else done.returncode}")
    return text.splitlines()[-1] if text else "accepted"
