"""The local backend of the scheduler: each job a detached `python -m ddae_core.worker RUN_DIR` on this
machine's CPU/GPU slots. The Slurm backend (cluster_backend.py) offers the same seam: submit, poll, cancel.

Workers run in their own process session, so they outlive the scheduler; a scheduler started later
finds them again (by pid, and their slots from their environment).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from db import Ingester, QueueEntry, RunRecord, Store
from db.records import FINAL_STATUSES

from ..engine.cpu_threads import threads_label
from ..rundir import DDP_KINDS, SPEC, STOP, EventType, RunStatus
from .tick_report import TickBuilder
from .worker_process import (
    HOST,
    append_event,
    find_process,
    last_status_event,
    on_this_host,
    signal_worker,
    start_worker,
    worker_slots,
)

log = logging.getLogger(__name__)

@dataclass
class _Worker:
    run: str
    slots: tuple[str, ...]
    proc: psutil.Process | None                     # None until an adopted worker's process is checked
    popen: subprocess.Popen | None = None           # None for workers a previous scheduler started
    started: float = field(default_factory=time.time)


class LocalBackend:
    """Jobs on this machine's slots. Not thread-safe by itself: the scheduler calls it under its lock."""

    def __init__(self, store: Store, ingester: Ingester, ingest_run: Callable[[str], None],
                 gpu_tokens: dict[str, str], *, kill_timeout_s: float, python: str, cpu_threads: int | None):
        self.store = store
        self.ingester = ingester
        self._ingest_run = ingest_run            # the scheduler's: counts what it ingests in the tick's report
        self._gpu = gpu_tokens                   # slot name -> the CUDA id its worker sees
        self.kill_timeout_s = kill_timeout_s
        self.python = python
        self.cpu_threads = cpu_threads
        self._workers: dict[str, _Worker] = {}
        self._exited: dict[str, int | None] = {}                     # run -> exit code, not judged yet
        self._foreign: dict[str, tuple[int, psutil.Process]] = {}    # running runs we did not start: pid, process

    def _record(self, run_id: str) -> RunRecord | None:
        try:
            return self.store.get_run(run_id)
        except LookupError:
            return None

    def submit(self, t: TickBuilder, entry: QueueEntry, kind: str, slots: list[str]) -> bool:
        """Start the job of `entry` on `slots` (of `kind`, cpu or gpu); False if it was not started."""
        if not self.store.dequeue(entry.run):
            return False                 # cancelled since we read the queue
        run_dir = self.store.run_dir(entry.run)
        stop = run_dir / STOP
        try:
            if stop.stat().st_mtime < entry.enqueued:
                stop.unlink()            # left from before the run was queued again
        except OSError:
            pass
        gpu_ids = [self._gpu[s] for s in slots] if kind == "gpu" else []
        try:
            if not (run_dir / SPEC).is_file():
                raise OSError(f"{run_dir} has no spec.yaml")
            # Only training runs data-parallel; another job given several GPUs runs as one process.
            nproc = len(gpu_ids) if entry.kind in DDP_KINDS and gpu_ids else 1
            threads = self.cpu_threads if kind == "cpu" else None
            popen = start_worker(run_dir, gpu_ids=gpu_ids, slots=slots, nproc=nproc,
                                 python=self.python, threads=threads)
        except OSError as exc:
            sentence = f"The worker of run {entry.run} could not be started ({exc}); check the Python interpreter."
            if run_dir.is_dir():
                append_event(run_dir, EventType.STATUS, status=RunStatus.FAILED, error=sentence)
            self.store.set_status(entry.run, RunStatus.FAILED, error=sentence)
            t.refused.append((entry.run, sentence))
            return False
        try:
            proc = psutil.Process(popen.pid)
        except psutil.Error:
            proc = None
        self._workers[entry.run] = _Worker(entry.run, tuple(slots), proc, popen)
        device = ",".join(slots) + (f" ({threads_label(threads)})" if threads else "")
        self.store.set_status(entry.run, RunStatus.RUNNING, pid=popen.pid, host=HOST, device=device)
        t.started.append((entry.run, ",".join(slots)))
        return True

    def poll(self, t: TickBuilder) -> None:
        """Reap the workers that exited, adopt live ones a previous scheduler started, mark runs whose
        process is gone as interrupted, and kill cancelled workers that outlive their timeout."""
        self._reap(t)
        self._enforce_cancels(t, self._check_running(t))

    def _reap(self, t: TickBuilder) -> None:
        """Free the slots of workers that exited, then judge how each ended."""
        for run_id, worker in list(self._workers.items()):
            code = None
            if worker.popen is not None:
                code = worker.popen.poll()
                if code is None:
                    continue
            elif _alive(worker.proc):
                continue
            del self._workers[run_id]
            self._exited[run_id] = code
        for run_id, code in list(self._exited.items()):
            if self.ingester.acquire():
                self._ingest_run(run_id)
                record = self._record(run_id)
                status = None if record is None else record.status
            else:
                # Another process indexes (the app, while we run headless): read the run's own last word.
                event = last_status_event(self.store.run_dir(run_id), with_pid=False) or {}
                status = event.get("status")
                if status not in FINAL_STATUSES:
                    continue                 # judged once we can index it, so a crash is not missed
            del self._exited[run_id]
            if status is None:
                continue                     # deleted meanwhile
            if status in (RunStatus.RUNNING, RunStatus.QUEUED):
                # Gone without a final status: a crash, an out-of-memory kill, a kill -9.
                how = "" if code is None else f" with code {code}" if code >= 0 else f" on signal {-code}"
                self.store.set_status(run_id, RunStatus.INTERRUPTED,
                                      error=f"The worker exited{how} without a final status; its log.txt says "
                                            "why, and resume continues from the last checkpoint.")
                t.interrupted.append(run_id)
            else:
                t.finished.append((run_id, status))

    def _check_running(self, t: TickBuilder) -> list[tuple[RunRecord, psutil.Process]]:
        """Adopt live workers we did not start; mark running runs whose process is gone as interrupted.

        Returns the live running runs on this host with their processes (for the cancel timeouts).
        """
        live: list[tuple[RunRecord, psutil.Process]] = []
        seen = set()
        for record in self.store.runs_by_status(RunStatus.RUNNING):
            seen.add(record.id)
            if record.id in self._exited:
                continue                 # our worker, gone: _reap judges it
            worker = self._workers.get(record.id)
            if worker is not None:
                proc = self._worker_process(worker, record)
                if proc is not None:
                    live.append((record, proc))
                continue
            if not on_this_host(record.host) or not record.pid:
                continue                 # another machine's run, or a foreground run not reporting yet
            proc = self._foreign_process(record)
            if proc is not None:
                slots = worker_slots(proc)
                if slots is not None:     # a worker a previous scheduler started: its slots are busy
                    self._workers[record.id] = _Worker(record.id, slots, proc, started=proc.create_time())
                live.append((record, proc))
                continue
            self._foreign.pop(record.id, None)
            if not self.ingester.acquire():
                continue                 # judge only on a fresh index: try again next tick
            self._ingest_run(record.id)   # a final status written just before it exited counts
            if self.store.mark_interrupted(record.id):
                t.interrupted.append(record.id)
        for run_id in set(self._foreign) - seen:
            del self._foreign[run_id]
        return live

    def _foreign_process(self, record: RunRecord) -> psutil.Process | None:
        """The live process of a running run we did not start, checked against pid reuse once per pid."""
        known = self._foreign.get(record.id)
        if known is not None and known[0] == record.pid:
            return known[1] if _alive(known[1]) else None
        event = last_status_event(self.store.run_dir(record.id))
        since = float(event["time"]) if event and event.get("pid") == record.pid \
            and isinstance(event.get("time"), (int, float)) else None
        proc = find_process(record.pid, since)
        if proc is not None:
            self._foreign[record.id] = (record.pid, proc)
        return proc

    def _worker_process(self, worker: _Worker, record: RunRecord) -> psutil.Process | None:
        """The process that reports for a worker we track: rank 0 under torchrun, else the worker itself."""
        if worker.popen is not None and record.pid and record.pid != worker.popen.pid:
            proc = find_process(record.pid)
            if proc is not None:
                return proc
        return worker.proc if _alive(worker.proc) else None

    # Cancels.
    def _enforce_cancels(self, t: TickBuilder, live: list[tuple[RunRecord, psutil.Process]]) -> None:
        now = time.time()
        for record, proc in live:
            try:
                requested = (self.store.run_dir(record.id) / STOP).stat().st_mtime
            except OSError:
                continue
            if now - requested < self.kill_timeout_s:
                continue
            self.cancel(record.id, proc)
            self._ingest_run(record.id)
            current = self._record(record.id)
            if current is not None and current.status == RunStatus.RUNNING:
                sentence = (f"The job did not stop within {self.kill_timeout_s:g} s of the cancel request, "
                            "so it was killed; resume continues from its last checkpoint.")
                append_event(self.store.run_dir(record.id), EventType.STATUS, status=RunStatus.CANCELLED,
                             error=sentence)
                self._ingest_run(record.id)
                if self._record(record.id).status == RunStatus.RUNNING:      # nobody ingested the line
                    self.store.set_status(record.id, RunStatus.CANCELLED, error=sentence)
            t.killed.append(record.id)

    def cancel(self, run_id: str, proc: psutil.Process) -> None:
        """Kill the worker of `run_id` now (its whole process group if we started it) and forget it."""
        worker = self._workers.get(run_id)
        started_by_scheduler = worker is not None
        target = worker.popen.pid if worker is not None and worker.popen is not None else proc.pid
        try:
            target_proc = psutil.Process(target)
        except psutil.Error:
            target_proc = proc
        signal_worker(target_proc, signal.SIGKILL, whole_group=started_by_scheduler)
        if worker is not None and worker.popen is not None:
            try:
                worker.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log.warning("Worker of run %s did not die after SIGKILL.", run_id)
        else:
            try:
                proc.wait(timeout=10)
            except psutil.Error:
                pass
        self._workers.pop(run_id, None)
        self._foreign.pop(run_id, None)

    def busy(self) -> set[str]:
        return {slot for w in self._workers.values() for slot in w.slots}

    def holders(self) -> dict[str, _Worker]:
        """Slot -> the worker holding it."""
        return {slot: w for w in self._workers.values() for slot in w.slots}

    def running(self) -> dict[str, tuple[str, ...]]:
        """Run id -> slots of the workers this scheduler knows are running."""
        return {run: w.slots for run, w in self._workers.items()}


def _alive(proc: psutil.Process | None) -> bool:
    """True while the process runs (psutil checks its creation time too, so a reused pid is not it)."""
    try:
        return proc is not None and proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
