"""Queue operations for the CLI and the GUI, from any process: cancel, resume, priority, refresh.

None of them needs the scheduler: they edit the index (the Store) and the run folder (STOP file,
events.jsonl for a run that never started), and signal a worker on this host. The scheduler notices
on its next tick.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path

from db import Ingester, QueueEntry, RunRecord, Store
from db.store import NEVER_STARTED, STARTING_S

from ..engine.errors import UserError
from ..rundir import EVENTS, RUNS_DIR, SPEC, STOP, EventType, RunStatus, read_meta, read_spec
from . import slurm, worklog
from .cluster import check_placement, current_job, run_cluster, set_run_cluster
from .worker_process import append_event, last_status_event, on_this_host, request_stop, run_process, signal_worker

log = logging.getLogger(__name__)

RESUMABLE = (RunStatus.INTERRUPTED, RunStatus.CANCELLED, RunStatus.FAILED)


def get_run(store: Store, ref: str) -> RunRecord:
    """The run `ref` names (id, id prefix or name), or UserError in one sentence."""
    try:
        return store.get_run(ref)
    except LookupError as exc:
        raise UserError(str(exc)) from None


def refresh(store: Store) -> bool:
    """Ingest once and mark dead `running` runs of this host interrupted, if the ingest lock is free.

    False when another process (the scheduler) holds it; that process keeps the index current.
    """
    ingester = Ingester(store)
    if not ingester.acquire():
        return False
    try:
        ingester.ingest_once()
        for record in store.runs_by_status(RunStatus.RUNNING):
            if not record.pid and never_started(store.run_dir(record.id), record.created):
                store.set_status(record.id, RunStatus.INTERRUPTED, error=NEVER_STARTED)
                continue
            if not on_this_host(record.host) or not record.pid:
                continue
            if run_process(store.run_dir(record.id), record.pid, record.host) is None:
                ingester.ingest_run(record.id)       # a final status written as it exited counts
                store.mark_interrupted(record.id)
    finally:
        ingester.release()
    return True


def wait_for_rebuild(store: Store, timeout_s: float = 60.0) -> None:
    """Wait while the index was never written although run folders exist: its file was deleted or replaced,
    and the process that keeps it (holding the ingest lock: a scheduler, the app) fills the new one on its
    next pass. So a command shows every run, never an empty workspace; UserError if that takes too long."""
    if store.data_version().version or not any((store.workspace / RUNS_DIR).glob(f"*/{SPEC}")):
        return
    holder = Ingester(store).holder() or "the process that keeps the index"
    print(f"note: the index of {store.workspace} is new and empty; waiting for {holder}, which keeps it, "
          "to fill it from the run folders", file=sys.stderr, flush=True)
    deadline = time.monotonic() + timeout_s
    while not store.data_version().version:
        if time.monotonic() > deadline:
            raise UserError(f"The index of {store.workspace} is still empty after {timeout_s:g} s although runs/ "
                            f"holds run folders, and {holder} keeps it; stop that process, then run `ddae reindex`.")
        time.sleep(0.1)


def never_started(run_dir: Path, created: float | None) -> bool:
    """A run folder no worker ever wrote to (no events.jsonl) and older than a start takes."""
    return not (run_dir / EVENTS).exists() and created is not None and time.time() - created > STARTING_S


def cancel(store: Store, workspace: Path, ref: str) -> str:
    """Cancel a queued or running run; returns what happened in a few words.

    Queued: taken out of the queue and marked cancelled (a status line in its events.jsonl, so a
    reindex agrees). Running: its STOP file is created and its worker (on this host) gets SIGTERM; it
    saves a checkpoint and exits as cancelled, or the scheduler kills it after its timeout.
    """
    record = get_run(store, ref)
    run_dir = Path(workspace) / RUNS_DIR / record.id
    if record.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        worklog.note(run_dir, f"cancel requested ({record.status})")
    if record.status == RunStatus.QUEUED:
        if store.dequeue(record.id):
            if run_dir.is_dir():
                append_event(run_dir, EventType.STATUS, status=RunStatus.CANCELLED)
            store.set_status(record.id, RunStatus.CANCELLED)
            return "cancelled (it had not started)"
        # The scheduler took it from the queue a moment ago: its worker finds the STOP file at once.
        request_stop(run_dir)
        return "stop requested (it was starting)"
    job_id = current_job(run_dir) if run_cluster(run_dir) else None
    if job_id is not None and record.status in (RunStatus.RUNNING, RunStatus.INTERRUPTED):
        answer = _cancel_slurm(store, record, run_dir, job_id)
        if answer is not None:
            return answer
    if record.status != RunStatus.RUNNING:
        raise UserError(f"Run {record.id} is {record.status}, so there is nothing to cancel.")
    request_stop(run_dir)
    if not on_this_host(record.host):
        return f"stop requested (it runs on {record.host}; it stops at its next check)"
    # SIGTERM only once the worker has said it runs (its handlers are in place by then; before, SIGTERM
    # would kill it, and the pid may still be torchrun's): until then the STOP file does it.
    event = last_status_event(run_dir)
    if event is not None and event.get("pid") == record.pid and event.get("status") == RunStatus.RUNNING:
        proc = run_process(run_dir, record.pid, record.host)
        if proc is not None:
            signal_worker(proc, signal.SIGTERM, whole_group=False)
    return "stop requested (it saves a checkpoint and exits)"


def _cancel_slurm(store: Store, record: RunRecord, run_dir: Path, job_id: str) -> str | None:
    """Cancel a run's live Slurm job: a pending one at once, a running one by SIGTERM to its worker.

    None when the job is no longer live (then the run is cancelled, or not, as any other).
    """
    try:
        job = slurm.query(fresh=True).get(job_id)
    except slurm.SlurmError as exc:
        request_stop(run_dir)
        return f"stop requested (its worker finds the STOP file; squeue failed: {exc})"
    if job is None or not job.live:
        return None
    request_stop(run_dir)
    try:
        if job.state == "PENDING":
            slurm.cancel(job_id)
            append_event(run_dir, EventType.STATUS, status=RunStatus.CANCELLED)
            store.set_status(record.id, RunStatus.CANCELLED)
            return f"cancelled (Slurm job {job_id} had not started)"
        slurm.cancel(job_id, "TERM")
    except slurm.SlurmError as exc:
        return f"stop requested (its worker finds the STOP file; scancel failed: {exc})"
    return f"stop requested (scancel --signal=TERM {job_id}: it saves a checkpoint and exits)"


def resume(store: Store, workspace: Path, ref: str, priority: int | None = None, gpus: int | None = None,
           cluster: str | None = None) -> QueueEntry:
    """Queue an interrupted, cancelled or failed run again; training continues from its last checkpoint.

    priority: default the run's last priority. gpus: default what it asked for before. cluster: where it
    runs now, a cluster profile or 'local' (default: where it ran before).
    """
    record = get_run(store, ref)
    if record.status not in RESUMABLE:
        hint = {RunStatus.QUEUED: "it is already queued", RunStatus.RUNNING: "it is running",
                RunStatus.DONE: "it finished; train a new run to go further"}.get(record.status, record.status)
        raise UserError(f"Run {record.id} cannot be resumed: {hint}.")
    run_dir = Path(workspace) / RUNS_DIR / record.id
    if not (run_dir / SPEC).is_file():
        raise UserError(f"Run {record.id} has no folder {run_dir} any more, so it cannot be resumed.")
    if gpus is not None and gpus < 0:
        raise UserError(f"--gpus must be 0 or more (got {gpus}).")
    job_id = current_job(run_dir) if run_cluster(run_dir) else None
    if job_id is not None:
        try:
            job = slurm.query(fresh=True).get(job_id)
        except slurm.SlurmError:
            job = None
        if job is not None and job.state in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"):
            raise UserError(f"Run {record.id} is still Slurm job {job_id} ({job.label()}): Slurm requeued it and "
                            "it resumes by itself; cancel it first to resume it elsewhere.")
        if job is not None and job.live:
            # Its worker has ended (the run's status says so); what is left is the job's wrapper exiting.
            try:
                slurm.cancel(job_id)
            except slurm.SlurmError as exc:
                log.warning("Could not scancel the ending Slurm job %s of run %s: %s", job_id, record.id, exc)
    if cluster is not None:
        set_run_cluster(run_dir, check_placement(workspace, cluster))
    (run_dir / STOP).unlink(missing_ok=True)      # else the worker would stop at once
    if priority is None:
        priority = last_priority(run_dir)
    try:
        entry = store.enqueue(record.id, priority=int(priority), gpus=record.gpus if gpus is None else int(gpus),
                              device_request=record.device_request)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    worklog.note(run_dir, f"resume requested: queued again after it was {record.status}")
    return entry


def last_priority(run_dir: Path) -> int:
    """The priority meta.json (or spec.yaml's queue block) last gave the run; 0 if none."""
    value = read_meta(run_dir).get("priority")
    if value is None:
        try:
            value = (read_spec(run_dir).get("queue") or {}).get("priority")
        except UserError:
            value = None
    try:
        return int(value or 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def set_priority(store: Store, ref: str, priority: int) -> None:
    """Change a queued run's priority (higher starts first)."""
    record = get_run(store, ref)
    try:
        store.set_priority(record.id, int(priority))
    except LookupError:
        raise UserError(f"Run {record.id} is {record.status}, not queued; only queued runs have a priority.") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
