"""Queue's feed: the rows of what runs, waits and just finished, and the queue's actions, read off the GUI thread.

Qt-free: the window's live hub calls rows() on its reader thread; the view only shows what it gets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from db import QueueEntry, RunSummary, Store
from db.records import FINAL_STATUSES
from ddae_core.rundir import RunStatus

__all__ = ["FINAL_STATUSES", "RECENT", "QueueFeed", "QueueLine"]

RECENT = 15     # finished runs the feed reads, for a look at how they ended and to resume them

@dataclass(frozen=True, slots=True)
class QueueLine:
    """A queued, running or recently finished job as the queue table shows it."""

    run: str
    name: str
    kind: str
    status: str
    priority: int | None
    device: str
    started: float | None
    finished: float | None
    done: int | None
    total: int | None
    stage: str | None
    error: str | None = None

    @property
    def fraction(self) -> float | None:
        if not self.total or self.done is None:
            return None
        return min(1.0, max(0.0, self.done / self.total))

    @classmethod
    def from_entry(cls, q: QueueEntry, stage: str | None = None) -> QueueLine:
        device = "CPU" if q.gpus == 0 or q.device_request == "cpu" else f"{q.gpus} GPU" + ("s" if q.gpus > 1 else "")
        return cls(q.run, q.name, q.kind, q.status, q.priority, device, None, None, None, None, stage)

    @classmethod
    def from_summary(cls, r: RunSummary) -> QueueLine:
        return cls(r.id, r.name, r.kind, r.status, r.priority, r.device or "", r.started, r.finished,
                   r.progress_done, r.progress_total, r.progress_stage, r.error)


class QueueFeed:
    """Reads the queue's rows and carries out the queue's actions, so the view never opens the Store."""

    def __init__(self, store: Store, after_change: Callable[[], None] | None = None):
        self.store = store
        self.after_change = after_change or (lambda: None)

    def rows(self) -> list[QueueLine]:
        running = self.store.list_runs(status=RunStatus.RUNNING, order_by="started", descending=False)
        queued = self.store.queued_jobs()
        # Why a queued job waits (e.g. for its parent's checkpoint) is its progress stage.
        stages = {r.id: r.progress_stage for r in self.store.list_runs(status=RunStatus.QUEUED)}
        recent = self.store.list_runs(status=FINAL_STATUSES, order_by="finished", limit=RECENT)
        rows = ([QueueLine.from_summary(r) for r in running]
                + [QueueLine.from_entry(q, stages.get(q.run)) for q in queued]
                + [QueueLine.from_summary(r) for r in recent])
        return self._with_slurm(rows)

    def _with_slurm(self, rows: list[QueueLine]) -> list[QueueLine]:
        """A cluster job's Device: its Slurm job id, state and reason, nodes, elapsed of its time limit."""
        from ddae_core.jobs.cluster_backend import cluster_jobs

        jobs = cluster_jobs(self.store.workspace, [row.run for row in rows])     # one cached squeue call
        return [replace(row, device=jobs[row.run].summary()) if row.run in jobs else row for row in rows]

    def run_dir(self, run_id: str) -> Path:
        return self.store.run_dir(run_id)

    def cancel(self, run_id: str) -> None:
        from ddae_core.jobs import queue_ops

        queue_ops.cancel(self.store, self.store.workspace, run_id)
        self.after_change()

    def resume(self, run_id: str) -> None:
        from ddae_core.jobs import queue_ops

        queue_ops.resume(self.store, self.store.workspace, run_id)
        self.after_change()

    def shift_priority(self, run_id: str, delta: int) -> int:
        from ddae_core.jobs import queue_ops

        current = next((q.priority for q in self.store.queued_jobs() if q.run == run_id), None)
        if current is None:
            raise LookupError(f"Run {run_id} is no longer queued; only queued jobs have a priority.")
        queue_ops.set_priority(self.store, run_id, current + delta)
        self.after_change()
        return current + delta
