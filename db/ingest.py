"""The one ingester of a workspace: new lines of every events.jsonl into SQLite, one transaction a pass.

Files are read before the write transaction begins, so SQLite's write lock is held only for the
inserts. Offsets advance only past complete lines, and every row is keyed (run, key, step),
(run, layer, timestep) or (run, path), so reading a line twice changes nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import nullcontext
from functools import cache
from pathlib import Path

from sqlalchemy import BindParameter, Update, bindparam, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ddae_core.rundir import (
    EVENTS,
    INGEST_LOCK,
    RUNS_DIR,
    SPEC,
    JobKind,
    ProcessLock,
    RunDirError,
    RunFiles,
    RunStatus,
    read_new_lines,
    read_run,
)

from .curves import update_curves
from .events import RunBatch
from .models import DeletedRun, QueueRow, Run
from .queries import headline_of, last_loss_of
from .records import IngestStats
from .store import Store

log = logging.getLogger(__name__)

MAX_BYTES_PER_RUN = 32 << 20       # read per run and pass; a longer backlog continues on the next pass
MAX_BYTES_PER_PASS = 128 << 20     # read per pass over all runs (bounds memory when reindexing)
SPEC_GRACE_S = 10.0                # a run folder is made, then its spec.yaml written at once: warn after this

_UPSERT_POINTS = (
    "INSERT INTO metric_points (run, key, step, value, time) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (run, key, step) DO UPDATE SET value = excluded.value, time = excluded.time"
)
_UPSERT_CELLS = (
    "INSERT INTO grid_cells (run, layer, timestep, accuracy, time) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (run, layer, timestep) DO UPDATE SET accuracy = excluded.accuracy, time = excluded.time"
)
_UPSERT_ARTIFACTS = (
    "INSERT INTO artifacts (run, path, kind, key, step, time) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run, path) DO UPDATE SET kind = excluded.kind, key = excluded.key, "
    "step = excluded.step, time = excluded.time"
)


@cache
def _own_summary() -> dict:
    """The run row's derived columns (last loss, best accuracy, baselines, protocol) for run :summary_run.

    Built once: SQLAlchemy spends ~20 ms of Python (eight aliases of the runs table) building these
    expressions, which per run and pass was most of an ingest pass, holding the GIL the window needs.
    """
    run: BindParameter[str] = bindparam("summary_run")
    return {"last_loss": last_loss_of(run), **headline_of(run)}


@cache
def _parent_summary_update() -> Update:
    """A probe's new cells can raise its parent's best accuracy (the train run's row shows it); the parent's
    version (:summary_version) moves too, so views that follow changes redraw its row now, not on a re-sort.
    Built once, as _own_summary."""
    parent = select(Run.parent_run).where(Run.id == bindparam("summary_run"),
                                          Run.kind == JobKind.PROBE).scalar_subquery()
    return update(Run).where(Run.id == parent).values(version=bindparam("summary_version"),
                                                      **headline_of(Run.id))


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


class IngestLockError(RuntimeError):
    """Another process is already the ingester of this workspace."""


class Ingester:
    """Reads runs/*/events.jsonl into the Store; one per workspace (a lock on ingest.lock)."""

    def __init__(self, store: Store, workspace: str | Path | None = None,
                 max_bytes_per_run: int = MAX_BYTES_PER_RUN, max_bytes_per_pass: int = MAX_BYTES_PER_PASS,
                 lock: ProcessLock | None = None):
        """lock: the workspace's ingest lock when the caller took it already (a reindex, before it writes)."""
        self.store = store
        self.workspace = Path(workspace).resolve() if workspace else store.workspace
        self.max_bytes_per_run = max_bytes_per_run
        self.max_bytes_per_pass = max_bytes_per_pass
        self._lock = lock if lock is not None else ProcessLock(self.workspace / INGEST_LOCK)
        self._replaced = store.follow_file()    # how often the index file was replaced, as last seen
        self._resume_at: str | None = None     # the run a pass that ran out of budget stopped at
        self._skipped: dict[str, str] = {}     # run id -> why it is not indexed (warned once per reason)

    # The workspace lock.
    def acquire(self) -> bool:
        """Take ingest.lock without waiting; False if another ingester holds it (see holder())."""
        return self._lock.acquire()

    def holder(self) -> str:
        """'pid 1234 on host' of the process holding ingest.lock ('' when nobody does)."""
        return self._lock.holder() or ""

    def require(self) -> None:
        """acquire(), or raise IngestLockError naming the holder."""
        if not self.acquire():
            raise IngestLockError(f"{self.workspace} is already being ingested by "
                                  f"{self.holder() or 'another process'}; only one ingester may run per workspace.")

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> Ingester:
        self.require()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # Passes.
    def ingest_once(self) -> IngestStats:
        """Register new run folders and ingest what every events.jsonl gained, in one transaction.

        If studio.sqlite was deleted or replaced since the last pass, the new file is filled from the run
        folders before this returns (passes until every events.jsonl is read), so nobody sees it half-built
        for longer than that.
        """
        self.require()
        replaced = self.store.follow_file()
        if replaced == self._replaced:
            return self._pass(only=None)
        self._replaced = replaced
        log.warning("%s was deleted or replaced; rebuilding the index from the run folders.", self.store.db_path)
        total = self._pass(only=None)
        while (more := self._pass(only=None)).runs_read:
            total = total.plus(more)
        return total

    def ingest_run(self, run_id: str) -> IngestStats:
        """The same for one run folder (registered first if needed)."""
        return self._pass(only=run_id)

    def serve(self, stop: threading.Event, interval_s: float = 0.5) -> None:
        """Ingest every interval_s until `stop` is set; a failing pass is logged and retried."""
        self.require()
        while not stop.is_set():
            try:
                self.ingest_once()
            except Exception as exc:   # noqa: BLE001 - keep ingesting; the next pass retries
                log.warning("Ingest pass failed (%s: %s); retrying.", exc.__class__.__name__, exc)
            stop.wait(interval_s)

    def _pass(self, only: str | None) -> IngestStats:
        self.require()
        started = time.perf_counter()
        runs_root = self.workspace / RUNS_DIR
        with self.store._read() as session:
            known = {rid: offset for rid, offset in session.execute(select(Run.id, Run.events_offset))}
            forgotten = set(session.scalars(select(DeletedRun.id)))
        # A new run's meta.json is read and its row written under meta.lock, so that a tag given meanwhile
        # lands either in the file read here or in the row written here.
        with self.store.meta_lock() if self._has_new(runs_root, known, forgotten, only) else nullcontext():
            return self._pass_locked(only, started, runs_root, known, forgotten)

    @staticmethod
    def _has_new(runs_root: Path, known: dict[str, int], forgotten: set[str], only: str | None) -> bool:
        if only:
            return only not in known
        try:
            return any(e.name not in known and e.name not in forgotten and e.is_dir() for e in os.scandir(runs_root))
        except FileNotFoundError:
            return False

    def _pass_locked(self, only: str | None, started: float, runs_root: Path, known: dict[str, int],
                     forgotten: set[str]) -> IngestStats:
        new_runs = self._new_runs(runs_root, known, forgotten, only)
        batches: list[tuple[RunBatch, int, float]] = []
        candidates = [only] if only else sorted([*known, *(f.id for f in new_runs)])
        if self._resume_at in candidates:    # start where the last pass ran out of budget
            at = candidates.index(self._resume_at)
            candidates = candidates[at:] + candidates[:at]
        budget, self._resume_at = self.max_bytes_per_pass, None
        for run_id in candidates:
            if budget <= 0:
                self._resume_at = run_id
                break
            batch = self._read_events(runs_root / run_id, run_id, known.get(run_id, 0),
                                      min(budget, self.max_bytes_per_run))
            if batch is not None:
                batches.append(batch)
                budget -= batch[0].end_offset - batch[0].start_offset
        if not new_runs and not batches:
            return IngestStats(seconds=time.perf_counter() - started)
        with self.store._write() as (session, version):
            registered = sum(self._register(session, version, files) for files in new_runs)
            stats = self._write(session, version, batches)
        return IngestStats(runs_registered=registered, seconds=time.perf_counter() - started, **stats)

    def _new_runs(self, runs_root: Path, known: dict[str, int], forgotten: set[str],
                  only: str | None) -> list[RunFiles]:
        if only:
            names = [only] if only not in known else []
        else:
            try:
                names = sorted(e.name for e in os.scandir(runs_root)
                               if e.is_dir() and e.name not in known and e.name not in forgotten)
            except FileNotFoundError:
                return []
        found = []
        for name in names:               # sorted ids: parents before their children
            run_dir = runs_root / name
            if not (run_dir / SPEC).is_file():
                if only:
                    raise RunDirError(f"{run_dir} is not a run folder: it has no {SPEC}.")
                if _older_than(run_dir, SPEC_GRACE_S):          # else still being created
                    self._skip(name, f"its folder has no {SPEC} (not a run folder, or its creation failed); "
                                     f"restore its {SPEC} or move the folder out of {runs_root}")
                continue
            try:
                found.append(read_run(run_dir))
            except RunDirError as exc:
                self._skip(name, str(exc))
        return found

    def _register(self, session: Session, version: int, files: RunFiles) -> bool:
        """Insert one new run in a savepoint: a run the index cannot hold is skipped, not the whole pass."""
        try:
            with session.begin_nested():
                inserted = self.store._insert_run(session, version, files)
            self._skipped.pop(files.id, None)      # fixed: a later breakage warns again
            return inserted
        except (SQLAlchemyError, OverflowError, ValueError, TypeError) as exc:
            self._skip(files.id, f"the index cannot hold a value of it ({exc.__class__.__name__}: "
                                 f"{str(exc).splitlines()[0][:200]}); fix its spec.yaml or meta.json")
            return False

    def _skip(self, run_id: str, why: str) -> None:
        """Warn that a run folder is not indexed; once per reason, as every pass (0.5 s) meets it again."""
        if self._skipped.get(run_id) != why:
            self._skipped[run_id] = why
            log.warning("Not indexing run %s: %s", run_id, why)

    def _read_events(self, run_dir: Path, run_id: str, offset: int, limit: int) -> tuple[RunBatch, int, float] | None:
        """The complete new lines of the run's events.jsonl as a batch, or None if it did not grow."""
        path = run_dir / EVENTS
        try:
            found = read_new_lines(path, offset, limit)
        except OSError as exc:
            log.warning("Cannot read %s (%s); trying again on the next pass.", path, exc.strerror or exc)
            return None
        if found is None:
            return None
        if found.rewound:               # rewritten: read it all again (idempotent)
            log.info("%s shrank below the %d bytes already read; reading it again from the start.", path, offset)
        batch = RunBatch(run_id, found.start)
        batch.end_offset = found.end
        if not found.overlong:
            batch.feed(found.lines, str(path))
        elif found.end - found.start < self.max_bytes_per_run:
            batch.end_offset = found.start      # this pass's budget was short: a later pass reads the line whole
        else:                                   # a "line" longer than any
            log.warning("Skipping %d bytes at byte %d of %s: no line ends within them.", found.end - found.start,
                        found.start, path)
        if batch.end_offset == offset:  # only a torn last line so far
            return None
        return batch, found.size, found.mtime

    def _write(self, session: Session, version: int, batches) -> dict:
        stats = dict(runs_read=0, bytes_read=0, events=0, metric_points=0, grid_cells=0, artifacts=0,
                     status_changes=0, skipped_lines=0)
        if not batches:
            return stats
        # A run deleted since we read the offsets must not get rows (its foreign keys would fail).
        alive = set(session.scalars(select(Run.id)))
        batches = [item for item in batches if item[0].run in alive]
        conn = session.connection()
        points: list[tuple] = []
        cells: list[tuple] = []
        artifacts: list[tuple] = []
        for b, _, _ in batches:
            run = b.run
            points.extend((run, k, s, v, t) for (k, s), (v, t) in b.metrics.items())
            cells.extend((run, layer, ts, a, t) for (layer, ts), (a, t) in b.cells.items())
            artifacts.extend((run, p, *rest) for p, rest in b.artifacts.items())
        if points:
            conn.exec_driver_sql(_UPSERT_POINTS, points)
            update_curves(conn, {b.run: b.metrics for b, _, _ in batches if b.metrics})
        if cells:
            conn.exec_driver_sql(_UPSERT_CELLS, cells)
        if artifacts:
            conn.exec_driver_sql(_UPSERT_ARTIFACTS, artifacts)
        for b, size, mtime in batches:
            self._update_run(session, version, b, size, mtime)
            stats["runs_read"] += 1
            stats["bytes_read"] += b.end_offset - b.start_offset
            stats["events"] += b.events
            stats["skipped_lines"] += b.skipped
            stats["status_changes"] += b.status.changes if b.status else 0
        stats.update(metric_points=len(points), grid_cells=len(cells), artifacts=len(artifacts))
        return stats

    @staticmethod
    def _update_run(session: Session, version: int, b: RunBatch, size: int, mtime: float) -> None:
        values: dict = {"events_offset": b.end_offset, "events_size": size, "events_mtime": mtime,
                        "version": version}
        if b.progress is not None:
            values.update(progress_done=b.progress[0], progress_total=b.progress[1],
                          progress_stage=b.progress[2], progress_time=b.progress[3])
        if b.grid_axes is not None:
            values["grid_axes"] = b.grid_axes
        params = {}
        if b.metrics or b.cells:
            values.update(_own_summary())
            params = {"summary_run": b.run}
        s = b.status
        if s is not None:
            values.update(status=s.status, error=s.error, finished=s.finished)
            for name in ("pid", "host", "device"):
                if getattr(s, name) is not None:
                    values[name] = getattr(s, name)
            if s.first_started is not None:
                values["started"] = func.coalesce(Run.started, s.first_started)
        session.execute(update(Run).where(Run.id == b.run).values(**values), params)
        if b.cells or b.metrics:
            session.execute(_parent_summary_update(), {"summary_run": b.run, "summary_version": version})
        if s is not None and s.status != RunStatus.QUEUED:
            session.execute(delete(QueueRow).where(QueueRow.run == b.run))
