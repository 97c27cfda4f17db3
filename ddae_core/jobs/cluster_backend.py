"""The queue's Slurm backend: the scheduler hands queued jobs placed on a cluster profile to Slurm.

The local backend is the scheduler's own slot logic (detached workers on this machine's GPUs and CPU
slots). This one is asked three things per tick: claims(run) (is the job placed on a cluster?),
submit(...) (sbatch through submitit instead of a local slot) and poll(...) (a live Slurm job per
running run; a run whose job is gone without a final status is interrupted, and a cancelled one that
does not stop in time is scancelled hard). Cancel itself is queue_ops.cancel: the STOP file plus
`scancel --signal=TERM`, which the worker handles as on this machine.

A submitted run is `running` in the index with pid 0 and host `slurm:<profile>` until its worker
starts and names its node and pid; the Slurm job id is in the run's slurm.json.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from db import QueueEntry, RunRecord, Store
from db.records import FINAL_STATUSES

from ..engine.errors import UserError
from ..rundir import RUNS_DIR, STOP, SWEEP_TAG_PREFIX, EventType, RunStatus
from . import slurm
from .cluster import get_profile, read_slurm, run_cluster
from .worker_process import append_event

log = logging.getLogger(__name__)

HOST_PREFIX = "slurm:"
GONE_GRACE_S = 20.0       # squeue may not list a job it accepted a moment ago


def slurm_host(cluster: str) -> str:
    return f"{HOST_PREFIX}{cluster}"


@dataclass(frozen=True, slots=True)
class ClusterJob:
    """What the Queue view and `ddae queue list` show of a run placed on a cluster."""

    cluster: str
    job_id: str | None
    state: str | None               # `PENDING (Priority)`, `RUNNING`, or None when squeue has no word
    nodes: str
    elapsed: str
    time_limit: str

    def summary(self) -> str:
        if self.job_id is None:
            return f"{self.cluster}: not submitted yet"
        state = self.state or "not in squeue"
        where = f" on {self.nodes}" if self.nodes else ""
        clock = f", {self.elapsed} of {self.time_limit}" if self.elapsed and self.time_limit else ""
        return f"{self.cluster} job {self.job_id}: {state}{where}{clock}"


def cluster_jobs(workspace: Path, run_ids) -> dict[str, ClusterJob]:
    """For each run placed on a cluster: its Slurm job and what squeue says of it (one squeue call)."""
    placed = {}
    for run_id in run_ids:
        data = read_slurm(Path(workspace) / RUNS_DIR / run_id)
        if data.get("cluster"):               # a run moved back here keeps its job ids, but is not placed
            placed[run_id] = data
    if not placed:
        return {}
    try:
        jobs = slurm.query() if any(d.get("job_id") for d in placed.values()) else {}
    except slurm.SlurmError as exc:
        log.debug("squeue failed: %s", exc)
        jobs = {}
    out = {}
    for run_id, data in placed.items():
        job_id = str(data["job_id"]) if data.get("job_id") else None
        state = jobs.get(job_id) if job_id else None
        out[run_id] = ClusterJob(str(data.get("cluster") or "?"), job_id, state.label() if state else None,
                                 state.nodes if state else "", state.elapsed if state else "",
                                 state.time_limit if state else "")
    return out


def cluster_gpus(entry: QueueEntry, profile) -> int:
    """GPUs to ask Slurm for, read as this machine's slots read a device request: cpu is none, cuda at least
    one, and auto asking for one GPU runs on the CPU of a profile without GPUs."""
    if entry.device_request == "cpu":
        return 0
    gpus = max(int(entry.gpus), 1) if entry.device_request == "cuda" else int(entry.gpus)
    if entry.device_request == "auto" and gpus == 1 and not profile.gpus_per_node:
        return 0
    return gpus


class ClusterBackend:
    """Submits, polls and times out the cluster jobs of one workspace's scheduler."""

    def __init__(self, workspace: Path, store: Store, ingest_run, kill_timeout_s: float = 30.0):
        self.workspace = Path(workspace)
        self.store = store
        self._ingest_run = ingest_run              # the scheduler's: counts what it ingests in the tick's report
        self.kill_timeout_s = kill_timeout_s
        self._submitted: dict[str, float] = {}       # run -> when we submitted it (for the squeue grace)
        self._killed: set[str] = set()
        self._pending: dict[str, str] = {}            # run -> the Slurm pending stage last written

    # Placement.
    def claims(self, run_id: str) -> str | None:
        """The cluster profile the queued run is placed on, or None (this machine)."""
        return run_cluster(self.store.run_dir(run_id))

    def active(self) -> list[str]:
        """Runs this backend submitted that have not ended yet (what `queue serve --once` waits for)."""
        return list(self._submitted)

    # Submitting.
    def submit_all(self, t, ready: list[tuple[QueueEntry, RunRecord, str]]) -> None:
        """Submit the tick's ready runs: the runs of one grid sweep (tag sweep:NAME) of one kind and size on one
        profile as a job array, every other run as a job of its own."""
        arrays: dict[tuple, list[tuple[QueueEntry, RunRecord]]] = {}
        for entry, record, cluster in ready:
            sweep = next((tag for tag in record.tags if tag.startswith(SWEEP_TAG_PREFIX)), None)
            key = (cluster, sweep, entry.kind, entry.gpus, entry.device_request) if sweep else (cluster, entry.run)
            arrays.setdefault(key, []).append((entry, record))
        for key, members in arrays.items():
            if len(members) == 1:
                self.submit(t, *members[0], key[0])
            else:
                self.submit_array(t, [entry for entry, _ in members], key[0], key[1].removeprefix(SWEEP_TAG_PREFIX))

    def submit_array(self, t, entries: list[QueueEntry], cluster: str, name: str) -> None:
        """sbatch the runs as one job array; a profile or submission Slurm refuses fails each with that sentence."""
        entries = [e for e in entries if self.store.dequeue(e.run)]      # those not cancelled since the queue was read
        if not entries:
            return
        for entry in entries:
            (self.store.run_dir(entry.run) / STOP).unlink(missing_ok=True)
        try:
            profile = get_profile(self.workspace, cluster)
            job_ids, shape = slurm.submit_array([self.store.run_dir(e.run) for e in entries], profile,
                                                cluster_gpus(entries[0], profile), entries[0].kind, name)
        except (UserError, OSError) as exc:
            for entry in entries:
                self._refused(t, entry, cluster, exc)
            return
        for entry, job_id in zip(entries, job_ids):
            self._submitted_as(t, entry, cluster, job_id, shape)

    def submit(self, t, entry: QueueEntry, record: RunRecord, cluster: str) -> bool:
        """sbatch the run; a profile or submission Slurm refuses fails the run with that sentence."""
        run_dir = self.store.run_dir(entry.run)
        if not self.store.dequeue(entry.run):
            return False                          # cancelled since the queue was read
        (run_dir / STOP).unlink(missing_ok=True)
        try:
            profile = get_profile(self.workspace, cluster)
            job_id, shape = slurm.submit(run_dir, profile, cluster_gpus(entry, profile), entry.kind)
        except (UserError, OSError) as exc:
            self._refused(t, entry, cluster, exc)
            return False
        self._submitted_as(t, entry, cluster, job_id, shape)
        return True

    def _refused(self, t, entry: QueueEntry, cluster: str, exc: Exception) -> None:
        run_dir = self.store.run_dir(entry.run)
        sentence = str(exc) if isinstance(exc, UserError) else \
            f"Run {entry.run} could not be submitted to cluster {cluster} ({exc})."
        append_event(run_dir, EventType.STATUS, status=RunStatus.FAILED, error=sentence)
        self.store.set_status(entry.run, RunStatus.FAILED, error=sentence)
        t.refused.append((entry.run, sentence))

    def _submitted_as(self, t, entry: QueueEntry, cluster: str, job_id: str, shape: slurm.Shape) -> None:
        run_dir = self.store.run_dir(entry.run)
        device = f"slurm {cluster} job {job_id}"
        if shape.gpus_per_node:
            device += f" ({shape.nodes}x{shape.gpus_per_node} GPU)"
        # pid 0: no local process to watch until the worker starts and names its own.
        append_event(run_dir, EventType.STATUS, status=RunStatus.RUNNING, pid=0, host=slurm_host(cluster),
                     device=device)
        self.store.set_status(entry.run, RunStatus.RUNNING, pid=0, host=slurm_host(cluster), device=device)
        self._submitted[entry.run] = time.time()
        t.started.append((entry.run, device))

    # Polling.
    def poll(self, t) -> None:
        """Judge running runs with a Slurm job by squeue: gone without a final status -> interrupted
        (or cancelled when a stop was asked); a stop not obeyed within the timeout -> scancel."""
        for run_id in list(self._submitted):          # ours that ended (their events were just ingested)
            try:
                status = self.store.get_run(run_id).status
            except LookupError:
                status = None
            if status != RunStatus.RUNNING:
                del self._submitted[run_id]
                self._killed.discard(run_id)
                self._pending.pop(run_id, None)
                if status in FINAL_STATUSES and run_id not in {r for r, _ in t.finished} \
                        and run_id not in t.interrupted:
                    t.finished.append((run_id, status))
        candidates = []
        for record in self.store.runs_by_status(RunStatus.RUNNING):
            run_dir = self.store.run_dir(record.id)
            placed = read_slurm(run_dir)
            if not placed.get("cluster") or not placed.get("job_id"):
                continue                          # runs here (a run moved back keeps its old job ids)
            candidates.append((record, run_dir, str(placed["job_id"])))
        if not candidates:
            return
        try:
            jobs = slurm.query()                  # cached a few seconds: ticks come twice a second
            if any(job_id not in jobs or not jobs[job_id].live for _, _, job_id in candidates):
                jobs = slurm.query(fresh=True)    # judge an ended job on squeue's word now, not a cached one
        except slurm.SlurmError as exc:
            t.errors.append(str(exc))
            return                                # no word from Slurm: judge nothing
        now = time.time()
        for record, run_dir, job_id in candidates:
            job = jobs.get(job_id)
            stop = _stop_time(run_dir)
            if job is not None and job.live:
                if job.state == "PENDING" and stop is None:
                    self._show_pending(record, run_dir, job)
                if stop is not None and (job.state == "PENDING" or now - stop >= self.kill_timeout_s) \
                        and record.id not in self._killed:
                    self.cancel(record.id, job_id)
                    if job.state == "PENDING":
                        self._end(t, record.id, run_dir, RunStatus.CANCELLED, None)
                    else:
                        t.killed.append(record.id)
                continue
            if now - self._submitted.get(record.id, 0) < GONE_GRACE_S:
                continue
            self._ingest_run(record.id)           # a final status written as it ended counts
            current = self.store.get_run(record.id)
            if current.status != RunStatus.RUNNING:
                continue                          # it ended on its own: reported at the next tick
            state = job.state if job is not None else "no longer in squeue"
            if stop is not None:
                self._end(t, record.id, run_dir, RunStatus.CANCELLED,
                          f"Slurm job {job_id} ended ({state}) after the cancel request; resume continues from "
                          "its last checkpoint.")
            else:
                self.store.set_status(record.id, RunStatus.INTERRUPTED,
                                      error=f"Slurm job {job_id} ended ({state}) without a final status; its log.txt "
                                            "says why, and resume continues from the last checkpoint.")
                t.interrupted.append(record.id)
            self._submitted.pop(record.id, None)
            self._killed.discard(record.id)

    def _show_pending(self, record: RunRecord, run_dir: Path, job: slurm.SlurmJobState) -> None:
        """Why a submitted job has not started (`Slurm: PENDING (Priority)`) as its progress stage, so the
        Queue view and `ddae queue list` show it. Only while Slurm says PENDING: no worker writes then."""
        stage = f"Slurm: {job.label()}"
        if self._pending.get(record.id) != stage and record.progress_stage != stage:
            append_event(run_dir, EventType.PROGRESS, done=0, total=0, stage=stage)
        self._pending[record.id] = stage

    def cancel(self, run_id: str, job_id: str) -> None:
        """scancel the run's Slurm job now (the poll does it once a stop outlives the timeout)."""
        try:
            slurm.cancel(job_id)
            self._killed.add(run_id)
        except slurm.SlurmError as exc:
            log.warning("Could not cancel Slurm job %s of run %s: %s", job_id, run_id, exc)

    def _end(self, t, run_id: str, run_dir: Path, status: str, error: str | None) -> None:
        self._submitted.pop(run_id, None)
        append_event(run_dir, EventType.STATUS, status=status, **({"error": error} if error else {}))
        self._ingest_run(run_id)
        if self.store.get_run(run_id).status == RunStatus.RUNNING:
            self.store.set_status(run_id, status, error=error)
        t.finished.append((run_id, status))


def _stop_time(run_dir: Path) -> float | None:
    try:
        return (run_dir / STOP).stat().st_mtime
    except OSError:
        return None
