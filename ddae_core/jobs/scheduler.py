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
import sys
import threading
from pathlib import Path

import psutil

from db import Ingester, RunRecord, Store

from ..engine.cpu_threads import slot_threads
from ..engine.errors import UserError
from ..rundir import SCHEDULER_LOCK, SPEC, EventType, ProcessLock, RunStatus, list_checkpoints, lock_holder
from . import worklog
from .cluster_backend import ClusterBackend
from .gpu_slots import (
    CpuMeter,
    GpuMeter,
    NeverFits,
    SlotState,
    cpu_fallback_note,
    detect_gpus,
    gpu_problem,
    slots_needed,
)
from .local_backend import LocalBackend
from .tick_report import TickBuilder, TickReport
from .worker_process import append_event

log = logging.getLogger(__name__)

WAITING_FOR_PARENT = "waiting for parent checkpoint"


class SchedulerLockError(UserError):
    """Another process is already the scheduler of this workspace."""


def scheduler_holder(workspace: Path) -> str | None:
    """'pid 1234 on host' of the process that is the workspace's scheduler, or None when none is."""
    return lock_holder(Path(workspace) / SCHEDULER_LOCK)


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
        self._gpu_problem = (gpu_problem() if gpus is None else "the scheduler was started without GPUs") \
            if not tokens else None
        self._cpu = [f"cpu{i}" for i in range(cpu_slots)]
        # Detected GPUs are named by position, given ones by their id; the value is what the worker sees.
        names = [f"gpu{i}" for i in range(len(tokens))] if gpus is None else [f"gpu{g}" for g in gpus]
        self._gpu = dict(zip(names, tokens))
        # Every CPU job's thread budget: the cores split between the slots (DDAE_CPU_THREADS overrides).
        self.cpu_threads = slot_threads(cpu_slots) if cpu_slots else None
        self._reasons_written: dict[str, str] = {}
        self._gpu_meter: GpuMeter | None = None
        self._cpu_meter = CpuMeter()
        self._lock = threading.RLock()
        self._workspace_lock = ProcessLock(self.workspace / SCHEDULER_LOCK)
        self._tick: TickBuilder | None = None
        # Two backends behind one seam (submit, poll, cancel): jobs placed on a cluster profile go to Slurm,
        # every other job takes a slot of this machine.
        self.local = LocalBackend(self.store, self.ingester, self._ingest_run, self._gpu,
                                  kill_timeout_s=self.kill_timeout_s, python=python, cpu_threads=self.cpu_threads)
        self.cluster = ClusterBackend(self.workspace, self.store, self._ingest_run, self.kill_timeout_s)

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
                self.local.poll(t)
                self.cluster.poll(t)
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

    def _start_jobs(self, t: TickBuilder) -> None:
        busy = self.local.busy()
        free_cpu = [s for s in self._cpu if s not in busy]
        free_gpu = [s for s in self._gpu if s not in busy]
        started = self.local.running()
        to_cluster = []             # submitted together after the loop: a sweep's runs go as one job array
        for entry in self.store.queued_jobs():
            if entry.run in started:
                # An index rebuilt from the run folders before this worker wrote its first status line
                # says queued again; it runs, once.
                self.store.dequeue(entry.run)
                continue
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
                to_cluster.append((entry, record, cluster))
                continue
            pool = free_cpu if need_kind == "cpu" else free_gpu
            if len(pool) < count:
                # Jobs further down that fit the free slots still start (a small job never waits behind a big one).
                what = "a free CPU slot" if need_kind == "cpu" else f"{count} free GPU{'s' if count > 1 else ''}"
                t.waiting.append((entry.run, f"waiting for {what}"))
                continue
            slots = pool[:count]
            if need_kind == "cpu" and entry.gpus > 0 and entry.device_request != "cpu":
                worklog.note(self.store.run_dir(entry.run), cpu_fallback_note(entry.gpus, self._gpu_problem))
            if self.local.submit(t, entry, need_kind, slots):
                self._reasons_written.pop(entry.run, None)
                del pool[:count]
        if to_cluster:
            self.cluster.submit_all(t, to_cluster)

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

    # For display.
    def slots(self) -> list[SlotState]:
        """Every slot with the run holding it and, where known, its utilisation and memory."""
        with self._lock:
            holders = self.local.holders()
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
            return self.local.running()
