"""The workspace's scheduler, ticking on its own thread so the GUI never waits for it.

If this process gets the scheduler lock it runs Scheduler.tick() (ingest, reap, start queued
jobs as detached workers) every interval. If another process holds it, the app still shows
everything: it ingests itself when the ingest lock is free (else the holder ingests and the
views just poll the Store), and tries to take the scheduler over every few seconds, so closing
`ddae queue serve` hands the queue to the app. Stopping the thread never stops a worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Signal

from db import Ingester, Store

from .background import Worker

log = logging.getLogger(__name__)

SCHEDULING = "scheduling"   # this app runs the queue
INGESTING = "ingesting"     # another process schedules; this app indexes events
WATCHING = "watching"       # another process schedules and indexes; this app only reads


def _make_scheduler(workspace: Path, store: Store, cpu_slots: int):
    from ddae_core.jobs.scheduler import Scheduler

    return Scheduler(workspace, store, cpu_slots=cpu_slots)


class SchedulerThread(Worker):
    """Ticks the scheduler (or, failing the lock, an ingester) every `interval_s` until stop() (workers keep
    running)."""

    state_changed = Signal(str, str)    # mode, one sentence for the status bar
    ticked = Signal(object)             # the TickReport (or IngestStats when only ingesting)
    slots_changed = Signal(list)        # [SlotState] after each scheduling tick: who holds which device
    problem = Signal(str)               # a failed tick, in one sentence; the next tick retries

    def __init__(self, workspace: Path, store: Store, *, cpu_slots: int = 1, interval_s: float = 0.5,
                 takeover_s: float = 5.0, factory: Callable | None = None, parent=None):
        super().__init__("ddae-scheduler", parent=parent)
        self.workspace = Path(workspace)
        self.store = store
        self.cpu_slots = cpu_slots
        self.interval_s = interval_s
        self.takeover_s = takeover_s
        self._factory = factory or _make_scheduler
        self.mode: str | None = None
        self.message = ""

    # Called from the GUI thread.
    def poke(self) -> None:
        """Tick now rather than at the next interval (after a launch, cancel or resume)."""
        self.wake()

    # The thread.
    def _set_mode(self, mode: str, message: str) -> None:
        if (mode, message) != (self.mode, self.message):
            self.mode, self.message = mode, message
            self.state_changed.emit(mode, message)

    def work(self) -> None:
        scheduler = None
        ingester: Ingester | None = None
        try:
            scheduler = self._factory(self.workspace, self.store, self.cpu_slots)
        except Exception as exc:  # noqa: BLE001 - no scheduler module: still index and show runs
            log.warning("No scheduler (%s); only indexing.", exc)
            self.problem.emit(f"The scheduler cannot start here ({exc.__class__.__name__}: {exc}); "
                              "queued jobs wait for `ddae queue serve`.")
        held = False
        next_try = 0.0
        try:
            while not self.stopping:
                if scheduler is not None and not held and time.monotonic() >= next_try:
                    held = self._try_acquire(scheduler)
                    next_try = time.monotonic() + self.takeover_s
                    if held and ingester is not None:
                        ingester.release()      # the scheduler's tick ingests now
                        ingester = None
                try:
                    if held:
                        self.ticked.emit(scheduler.tick())
                        self.slots_changed.emit(list(scheduler.slots()))
                    else:
                        ingester = self._ingest(ingester, scheduler)
                except Exception as exc:
                    log.exception("Scheduler tick failed")
                    self.problem.emit(f"A scheduler tick failed ({exc.__class__.__name__}: {exc}); retrying.")
                self.pause(self.interval_s)
        finally:
            if ingester is not None:
                ingester.release()
            if held and scheduler is not None:
                try:
                    scheduler.release()
                except Exception:
                    log.exception("Releasing the scheduler lock failed")

    def _try_acquire(self, scheduler) -> bool:
        if scheduler.acquire():
            self._set_mode(SCHEDULING, "Scheduler: running queued jobs from this window.")
            return True
        return False

    def _ingest(self, ingester: Ingester | None, scheduler) -> Ingester | None:
        holder = _holder_text(scheduler)
        if ingester is None:
            candidate = Ingester(self.store)
            if candidate.acquire():
                ingester = candidate
        who = (f"Scheduler held by {holder}: it runs the queue" if scheduler is not None
               else "No scheduler runs in this window")
        self.slots_changed.emit([])
        if ingester is not None:
            self._set_mode(INGESTING, f"{who}; this window indexes and shows everything.")
            self.ticked.emit(ingester.ingest_once())
        else:
            self._set_mode(WATCHING, f"{who}; another process indexes, this window shows everything.")
        return ingester


def _holder_text(scheduler) -> str:
    """The holder as the scheduler names it ('pid 1234 on host'), or 'another process'."""
    try:
        holder = scheduler.holder() if scheduler is not None else None
    except Exception:  # noqa: BLE001 - a lock file we cannot read: still say someone has it
        holder = None
    return str(holder) if holder else "another process"
