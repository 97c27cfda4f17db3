"""The scheduler of a workspace: queued jobs onto free device slots as detached worker processes.

One per workspace (scheduler.lock), inside the GUI or headless (`ddae queue serve`). Each tick
ingests the run folders, reaps finished workers, marks runs whose process is gone as interrupted,
kills cancelled workers that outlive their timeout, and starts the highest-priority queued jobs that
fit the free slots. Workers run in their own process session, so they outlive the scheduler; a
scheduler started later finds them again (by pid, and their slots from their environment).
No Qt here: the GUI calls tick() on a timer from a thread of its own.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from db import Ingester, QueueEntry, RunRecord, Store
from db.records import FINAL_STATUSES

from ..rundir import SCHEDULER_LOCK, SPEC, STOP, EventType, JobKind, ProcessLock, RunStatus, lock_holder
from .cluster_backend import ClusterBackend
from ..engine.cpu_threads import slot_threads, threads_label
from .gpu_slots import CpuMeter, GpuMeter, NeverFits, SlotState, detect_gpus, slots_needed
from ..engine.errors import UserError
from .tick_report import TickBuilder, TickReport
from ..engine.runs import list_checkpoints
from .worker_process import (
    HOST, append_event, find_process, last_status_event, on_this_host, signal_worker, start_worker, worker_slots,
)

log = logging.getLogger(__name__)

WAITING_FOR_PARENT = "waiting for parent checkpoint"
DDP_KINDS = (JobKind.TRAIN,)             # job kinds whose runner trains data-parallel under torchrun


class SchedulerLockError(UserError):
    """Another process is already the scheduler of this workspace."""


def scheduler_holder(workspace: Path) -> str | None:
    """'pid 1234 on host' of the process that is the workspace's scheduler, or None when none is."""
    return lock_holder(Path(workspace) / SCHEDULER_LOCK)


@dataclass
class _Worker:
    run: str
    slots: tuple[str, ...]
    proc: psutil.Process | None                     # None until an adopted worker's process is checked
    popen: subprocess.Popen | None = None           # None for workers a previous scheduler started
    started: float = field(default_factory=time.time)


class Scheduler:
    """Starts queued jobs on free CPU/GPU slots; call acquire(), then tick() (or serve()), then release()."""

    def __init__(self, workspace: Path, store: Store | None = None, *, cpu_slots: int = 1,
                 gpus: list[int] | None = None, kill_timeout_s: float = 30.0, python: str = sys.executable):
        """gpus: CUDA device ids to schedule on (None: all that torch.cuda sees; [] for none).

        cpu_slots: CPU jobs that may run at once. kill_timeout_s: how long a cancelled worker may take
        to save and exit before it is killed. python: the interpreter that runs the workers.
        """
        if cpu_slots < 0:
            raise UserError(f"cpu_slots must be 0 or more (got {cpu_slots}).")
        self.workspace = Path(workspace).expanduser().resolve()
        self._own_store = store is None
        self.store = store if store is not None else Store.open(self.workspace)
        self.ingester = Ingester(self.store, self.workspace)
        self.kill_timeout_s = float(kill_timeout_s)
        self.python = python
        tokens = detect_gpus() if gpus is None else [str(g) for g in gpus]
        self._cpu = [f"cpu{i}" for i in range(cpu_slots)]
        # Detected GPUs are named by position, given ones by their id; the value is what the worker sees.
        names = [f"gpu{i}" for i in range(len(tokens))] if gpus is None else [f"gpu{g}" for g in gpus]
        self._gpu = dict(zip(names, tokens))
        # Every CPU job's thread budget: the cores split between the slots (DDAE_CPU_THREADS overrides).
        self.cpu_threads = slot_threads(cpu_slots) if cpu_slots else None
        self._workers: dict[str, _Worker] = {}
        self._exited: dict[str, int | None] = {}                     # run -> exit code, not judged yet
        self._foreign: dict[str, tuple[int, psutil.Process]] = {}    # running runs we did not start: pid, process
        self._reasons_written: dict[str, str] = {}
        self._gpu_meter: GpuMeter | None = None
        self._cpu_meter = CpuMeter()
        self._lock = threading.RLock()
        self._workspace_lock = ProcessLock(self.workspace / SCHEDULER_LOCK)
        self._tick: TickBuilder | None = None
        # Jobs placed on a cluster profile go to Slurm; every other job takes a slot here (below).
        self.cluster = ClusterBackend(self.workspace, self.store, self.kill_timeout_s)

    # The workspace lock.
    def acquire(self) -> bool:
        """Become the scheduler of the workspace (scheduler.lock, without waiting); False if another is."""
        with self._lock:
            if not self._workspace_lock.acquire():
                return False
            self.ingester.acquire()      # held from now on when free; else retried each tick
            return True

    def holder(self) -> str | None:
        """'pid 1234 on host' of the process holding scheduler.lock, or None when nobody does."""
        return self._workspace_lock.holder()

    def require(self) -> None:
        """acquire(), or raise SchedulerLockError naming the holder."""
        if not self.acquire():
            raise SchedulerLockError(
                f"The scheduler of {self.workspace} is already running ({self.holder() or 'another process'}); "
                "stop it first, or use `ddae queue list|cancel|resume|priority` alongside it.")

    def release(self) -> None:
        """Stop being the scheduler; running workers keep running (a later scheduler finds them)."""
        with self._lock:
            self.ingester.release()
            self._workspace_lock.release()

    def close(self) -> None:
        self.release()
        if self._own_store:
            self.store.close()

    def __enter__(self) -> Scheduler:
        self.require()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # The loop.
    def serve(self, stop: threading.Event, interval_s: float = 0.5, on_tick=None) -> None:
        """tick() every interval_s until `stop` is set; on_tick(report) sees each report.

        Takes the lock if not held (SchedulerLockError if another scheduler has it) and gives back
        what it took; workers keep running after it returns.
        """
        took = not self._workspace_lock.held
        self.require()
        try:
            while not stop.is_set():
                try:
                    report = self.tick()
                    if on_tick is not None:
                        on_tick(report)
                except Exception as exc:  # noqa: BLE001 - a failing tick is logged and retried
                    log.warning("Scheduler tick failed (%s: %s); retrying.", exc.__class__.__name__, exc)
                stop.wait(interval_s)
        finally:
            if took:
                self.release()

    def tick(self) -> TickReport:
        """One pass: ingest, reap, mark the dead interrupted, enforce cancel timeouts, start what fits."""
        with self._lock:
            if not self._workspace_lock.held:
                raise RuntimeError("Scheduler.tick() needs the workspace's scheduler lock; call acquire() first.")
            t = self._tick = TickBuilder()
            try:
                self._ingest(t)
                self._reap(t)
                running = self._check_running(t)
                self._enforce_cancels(t, running)
                self.cluster.poll(t, self._ingest_run)
                self._start_jobs(t)
            finally:
                self._tick = None
            return t.build()

    # Ingest.
    def _ingest(self, t: TickBuilder) -> None:
        if not self.ingester.acquire():
            return                       # a CLI command is ingesting right now; the next tick will
        try:
            t.add(self.ingester.ingest_once())
        except Exception as exc:  # noqa: BLE001 - keep scheduling on the index as it is
            t.errors.append(f"ingest failed ({exc.__class__.__name__}: {exc})")

    def _ingest_run(self, run_id: str) -> None:
        if self.ingester.acquire():
            try:
                stats = self.ingester.ingest_run(run_id)
            except Exception as exc:  # noqa: BLE001 - judged on the index as it is
                log.warning("Could not ingest run %s (%s).", run_id, exc)
                return
            if self._tick is not None:
                self._tick.add(stats)

    def _record(self, run_id: str) -> RunRecord | None:
        try:
            return self.store.get_run(run_id)
        except LookupError:
            return None

    # Workers.
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
            worker = self._workers.get(record.id)
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
                    log.warning("Worker of run %s did not die after SIGKILL.", record.id)
            else:
                try:
                    proc.wait(timeout=10)
                except psutil.Error:
                    pass
            self._workers.pop(record.id, None)
            self._foreign.pop(record.id, None)
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

    # Starting jobs.
    def _busy(self) -> set[str]:
        return {slot for w in self._workers.values() for slot in w.slots}

    def _start_jobs(self, t: TickBuilder) -> None:
        busy = self._busy()
        free_cpu = [s for s in self._cpu if s not in busy]
        free_gpu = [s for s in self._gpu if s not in busy]
        for entry in self.store.queued_jobs():
            record = self._record(entry.run)
            if record is None:
                continue                 # deleted since we read the queue
            cluster = self.cluster.claims(entry.run)
            try:
                if cluster is None:
                    need_kind, count = slots_needed(entry.run, entry.device_request, entry.gpus,
                                                    len(self._gpu), len(self._cpu))
                reason = self._parent_wait(record)
            except NeverFits as never:
                self._refuse(t, entry.run, str(never))
                continue
            if reason is not None:
                t.waiting.append((entry.run, reason))
                self._show_reason(entry.run, reason)
                continue
            if cluster is not None:
                self.cluster.submit(t, entry, record, cluster)
                continue
            pool = free_cpu if need_kind == "cpu" else free_gpu
            if len(pool) < count:
                # Jobs further down that fit the free slots still start (a small job never waits behind a big one).
                what = "a free CPU slot" if need_kind == "cpu" else f"{count} free GPU{'s' if count > 1 else ''}"
                t.waiting.append((entry.run, f"waiting for {what}"))
                continue
            slots = pool[:count]
            if self._launch(t, entry, need_kind, slots):
                del pool[:count]

    def _parent_wait(self, record: RunRecord) -> str | None:
        """None when the job's parent checkpoint exists (or it has no parent), else why it waits."""
        parent = record.parent_run or record.parent_ref
        if not parent:
            return None
        which = str(record.parent_checkpoint or "latest")
        steps = [step for step, _ in list_checkpoints(self.store.run_dir(parent))]
        if steps and (which == "latest" or (which.isdigit() and int(which) in steps)):
            return None
        parent_record = self._record(parent) if record.parent_run else None
        if parent_record is None or not self.store.run_dir(parent).is_dir():
            raise NeverFits(f"Run {record.id} evaluates run {parent}, which was deleted; "
                         "queue the evaluation again on another run.")
        wanted = "a checkpoint" if which == "latest" else f"a checkpoint at step {which}"
        if parent_record.status in (RunStatus.DONE, RunStatus.FAILED):
            raise NeverFits(f"Run {record.id} needs {wanted} of run {parent}, which ended {parent_record.status} "
                         "without it; evaluate another checkpoint or run.")
        return WAITING_FOR_PARENT if which == "latest" else f"{WAITING_FOR_PARENT} {which}"

    def _show_reason(self, run_id: str, reason: str) -> None:
        """Show why a queued job waits as its progress stage (a progress line in its events.jsonl)."""
        if self._reasons_written.get(run_id) == reason:
            return
        record = self._record(run_id)
        if record is not None and record.progress_stage != reason:
            append_event(self.store.run_dir(run_id), EventType.PROGRESS, done=0, total=0, stage=reason)
        self._reasons_written[run_id] = reason

    def _refuse(self, t: TickBuilder, run_id: str, sentence: str) -> None:
        if not self.store.dequeue(run_id):
            return                       # cancelled or started meanwhile
        run_dir = self.store.run_dir(run_id)
        if (run_dir / SPEC).is_file():
            append_event(run_dir, EventType.STATUS, status=RunStatus.FAILED, error=sentence)
        self.store.set_status(run_id, RunStatus.FAILED, error=sentence)
        t.refused.append((run_id, sentence))

    def _launch(self, t: TickBuilder, entry: QueueEntry, kind: str, slots: list[str]) -> bool:
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
        self._reasons_written.pop(entry.run, None)
        device = ",".join(slots) + (f" ({threads_label(threads)})" if threads else "")
        self.store.set_status(entry.run, RunStatus.RUNNING, pid=popen.pid, host=HOST, device=device)
        t.started.append((entry.run, ",".join(slots)))
        return True

    # For display.
    def slots(self) -> list[SlotState]:
        """Every slot with the run holding it and, where known, its utilisation and memory."""
        with self._lock:
            holders = {slot: w for w in self._workers.values() for slot in w.slots}
        out = []
        total_mb = psutil.virtual_memory().total / 2**20
        for slot in self._cpu:
            worker = holders.get(slot)
            util = mem = None
            if worker is not None and worker.proc is not None:
                util, mem = self._cpu_meter.read(worker.proc)
            out.append(SlotState(slot, "cpu", worker.run if worker else None, util, mem, total_mb))
        if self._gpu and self._gpu_meter is None:
            self._gpu_meter = GpuMeter()
        for slot, token in self._gpu.items():
            worker = holders.get(slot)
            util, used, total = self._gpu_meter.read(token)
            out.append(SlotState(slot, "gpu", worker.run if worker else None, util, used, total))
        return out

    def running(self) -> dict[str, tuple[str, ...]]:
        """Run id -> slots of the workers this scheduler knows are running."""
        with self._lock:
            return {run: w.slots for run, w in self._workers.items()}


def _alive(proc: psutil.Process | None) -> bool:
    """True while the process runs (psutil checks its creation time too, so a reused pid is not it)."""
    try:
        return proc is not None and proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
