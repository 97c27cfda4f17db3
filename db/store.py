"""The Store: every public method is one short managed session returning plain records.

Run-level edits (status, tags, notes, name, queue) live here; reads of curves, grids and
artifacts live in db/reads.py (mixed in), the bulk writes of events in db/ingest.py.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from ddae_core.rundir import (
    DATA_DIR,
    DB_NAME,
    DEVICE_REQUESTS,
    META_LOCK,
    RUNS_DIR,
    RunFiles,
    RunStatus,
    check_gpus,
    check_priority,
    read_meta,
    read_run,
    waiting_lock,
    write_meta,
)

from . import engine as engines, names, settings
from .models import DeletedRun, QueueRow, Run, StudioState
from .queries import headline_of, order_clause, resolve, run_filters, summary_select, to_record, to_summaries
from .reads import ReadsMixin
from .records import FINAL_STATUSES, STATUSES, Changes, ChangeToken, QueueEntry, RunRecord, RunSummary
from .table import TableMixin

log = logging.getLogger(__name__)

STARTING_S = 60.0          # a run folder younger than this without events.jsonl is still starting
NEVER_STARTED = ("it never started: its folder has no events.jsonl (its worker was killed before its first line, "
                 "or the folder was copied without it)")


def _starting(created: float | None) -> bool:
    return created is not None and time.time() - created < STARTING_S


class Store(ReadsMixin, TableMixin):
    """The index of one workspace. Open with Store.open(workspace); thread-safe; close() when done."""

    def __init__(self, workspace: Path, db_path: Path):
        self.workspace = workspace
        self.db_path = db_path
        self._engine, self._sessions = engines.acquire(db_path)
        self._closed = False

    @classmethod
    def open(cls, workspace: str | Path, db_path: str | Path | None = None) -> Store:
        """Open (creating runs/, data/ and studio.sqlite as needed) and migrate; SchemaError if too new,
        PermissionError if the database's folder is read-only."""
        workspace = Path(workspace).expanduser().resolve()
        (workspace / RUNS_DIR).mkdir(parents=True, exist_ok=True)
        (workspace / DATA_DIR).mkdir(parents=True, exist_ok=True)
        db_path = Path(db_path) if db_path else workspace / DB_NAME
        # SQLite would call a read-only folder an unreadable database (SchemaError, "reindex it").
        if not os.access(db_path.parent, os.W_OK):
            raise PermissionError(errno.EROFS, "the folder is read-only", str(db_path.parent))
        return cls(workspace, db_path)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            engines.release(self.db_path)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run_dir(self, run_id: str) -> Path:
        return self.workspace / RUNS_DIR / run_id

    # Sessions.
    def follow_file(self) -> int:
        """Reopen studio.sqlite if it was deleted or replaced (db.engine.follow); how often that happened."""
        return engines.follow(self.db_path)

    @contextmanager
    def _read(self) -> Iterator[Session]:
        self.follow_file()
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def _write(self) -> Iterator[tuple[Session, int]]:
        """A write transaction (BEGIN IMMEDIATE) and the change version it stamps on what it touches."""
        self.follow_file()
        with self._sessions() as session, session.begin():
            engines.immediate(session)
            version = session.execute(
                update(StudioState).where(StudioState.id == 1)
                .values(version=StudioState.version + 1).returning(StudioState.version)
            ).scalar_one()
            yield session, version

    def _resolve(self, session: Session, ref: str) -> str:
        return resolve(session, ref, str(self.workspace))

    def _touch(self, session: Session, run_id: str, version: int, **values) -> None:
        session.execute(update(Run).where(Run.id == run_id).values(version=version, **values))

    @contextmanager
    def meta_lock(self) -> Iterator[None]:
        """The workspace's meta.lock: held while a meta.json is merged and while a reindex swaps the index.

        Once it is held no swap is under way, so the index is reopened here: a connection this process opened
        during another's swap (when the path was briefly missing or about to be renamed over) would otherwise
        write an edit into a file nobody reads any more.
        """
        with waiting_lock(self.workspace / META_LOCK, what=f"The run metadata of {self.workspace}"):
            engines.follow(self.db_path, force=True)
            yield

    def _edit_meta(self, ref: str, change) -> dict:
        """Apply change(fields) to the run's tags, notes and name, merged into meta.json under meta.lock.

        meta.json, read under the lock, is what the edit starts from (the index may be older: a reindex may
        have built it before the last edit); the index row gets what meta.json now holds. Returns the fields.
        """
        with self._read() as session:
            run_id = self._resolve(session, ref)
        run_dir = self.run_dir(run_id)
        with self.meta_lock():
            with self._read() as session:        # after the lock: a reindex swapped in by now is the one read
                run = session.get(Run, run_id)
                if run is None:
                    raise LookupError(f"Run {run_id} left the index meanwhile; refresh and try again.")
                fields = {"tags": json.loads(run.tags), "notes": run.notes, "name": run.name}
            meta = read_meta(run_dir) if run_dir.is_dir() else {}
            if isinstance(meta.get("tags"), list):
                fields["tags"] = [str(t) for t in meta["tags"]]
            for key in ("notes", "name"):
                if isinstance(meta.get(key), str) and (meta[key] or key == "notes"):
                    fields[key] = meta[key]
            change(fields)
            if run_dir.is_dir():
                try:
                    write_meta(run_dir, fields)
                except OSError as exc:
                    log.warning("Could not write %s/meta.json (%s); the change is kept in the index only.",
                                run_dir, exc.strerror or exc)
            with self._write() as (session, version):
                self._touch(session, run_id, version, tags=json.dumps(fields["tags"]), notes=fields["notes"],
                            name=fields["name"])
        return fields

    def _merge_meta(self, run_id: str, **extra) -> None:
        """Merge `extra` (a queued run's priority) into meta.json; the caller holds meta.lock."""
        run_dir = self.run_dir(run_id)
        if not run_dir.is_dir():
            return
        try:
            write_meta(run_dir, extra)
        except OSError as exc:
            log.warning("Could not write %s/meta.json (%s); the change is kept in the index only.",
                        run_dir, exc.strerror or exc)

    # Registering runs.
    def register_run(self, run_dir: str | Path) -> RunRecord:
        """Index the run folder (spec.yaml + meta.json); idempotent. RunDirError if it has no spec, NameTaken
        (db/names.py) if it is new and another run has its name."""
        files = read_run(Path(run_dir))
        with self._write() as (session, version):
            if session.get(Run, files.id) is None:
                names.check_free(session, files.name, other_than=files.id)
            session.execute(delete(DeletedRun).where(DeletedRun.id == files.id))
            self._insert_run(session, version, files)
            return to_record(session.get(Run, files.id))

    def _insert_run(self, session: Session, version: int, files: RunFiles) -> bool:
        """Insert the run unless it is already indexed; True when inserted."""
        if session.get(Run, files.id) is not None:
            return False
        parent = files.parent_ref
        if parent and session.get(Run, parent) is None:
            parent = None       # linked when the parent is registered
        status, error = RunStatus.QUEUED if files.queued else RunStatus.RUNNING, None
        if not files.queued and not files.has_events and not _starting(files.created):
            status, error = RunStatus.INTERRUPTED, NEVER_STARTED
        session.execute(insert(Run).values(
            id=files.id, name=files.name, kind=files.kind, status=status, error=error,
            spec=json.dumps(files.spec, sort_keys=True), data=files.data,
            parent_run=parent, parent_ref=files.parent_ref, parent_checkpoint=files.parent_checkpoint,
            created=files.created, host=files.host,
            device_request=files.device_request, gpus=files.gpus,
            tags=json.dumps(files.tags), notes=files.notes, version=version,
        ))
        settings.fill(session, files.id, files.spec, files.kind)
        session.execute(
            update(Run).where(Run.parent_ref == files.id, Run.parent_run.is_(None))
            .values(parent_run=files.id, version=version)
        )
        if files.queued:
            self._put_in_queue(session, files.id, files.priority, files.gpus, files.device_request,
                               files.created if files.created is not None else time.time())
        return True

    def _put_in_queue(self, session: Session, run_id: str, priority: int, gpus: int,
                      device_request: str, enqueued: float) -> None:
        seq = session.execute(select(func.coalesce(func.max(QueueRow.seq), 0) + 1)).scalar_one()
        session.execute(delete(QueueRow).where(QueueRow.run == run_id))
        session.execute(insert(QueueRow).values(
            run=run_id, priority=int(priority), gpus=int(gpus),
            device_request=device_request, enqueued=enqueued, seq=seq,
        ))

    def free_name(self, name: str) -> str:
        """`name`, or `name (2)`, `name (3)`, ... whichever no run has yet (for names the program made up)."""
        with self._read() as session:
            return names.free_name(session, name)

    def check_name(self, name: str, other_than: str | None = None) -> None:
        """NameTaken, offering a free name, when a run other than `other_than` is named `name`."""
        with self._read() as session:
            names.check_free(session, name, other_than)

    # Reading runs.
    def get_run(self, ref: str) -> RunRecord:
        """A run by id, unique id prefix or exact name; LookupError (one sentence) if none or several."""
        with self._read() as session:
            return to_record(session.get(Run, self._resolve(session, ref)))

    def list_runs(self, kind=None, status=None, tag=None, search=None, order_by: str = "created",
                  descending: bool = True, limit: int | None = None, offset: int = 0,
                  where: str | None = None) -> list[RunSummary]:
        """One page of the run table in one query; kind/status/tag take one value or several (tags: all),
        `where` a query line (db/query.py: `diffusion.n_T <= 256 and best > 0.8`; QueryError when malformed)."""
        stmt = summary_select().where(*run_filters(kind, status, tag, search, where)).offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as session:
            stmt = stmt.order_by(*order_clause(order_by, descending, settings.is_key(session, order_by)))
            # Core execution on the session's connection: no ORM result processing per row.
            return to_summaries(session.connection().execute(stmt).all())

    def count_runs(self, kind=None, status=None, tag=None, search=None, where: str | None = None) -> int:
        stmt = select(func.count()).select_from(Run).where(*run_filters(kind, status, tag, search, where))
        with self._read() as session:
            return session.execute(stmt).scalar_one()

    def runs_by_status(self, statuses: str | Iterable[str]) -> list[RunRecord]:
        statuses = [statuses] if isinstance(statuses, str) else list(statuses)
        with self._read() as session:
            rows = session.scalars(select(Run).where(Run.status.in_(statuses)).order_by(Run.id))
            return [to_record(r) for r in rows]

    def children(self, ref: str) -> list[RunSummary]:
        """Runs whose parent is this run (evaluations of a trained model), oldest first."""
        with self._read() as session:
            run_id = self._resolve(session, ref)
            stmt = summary_select().where(Run.parent_run == run_id).order_by(Run.created, Run.id)
            return to_summaries(session.connection().execute(stmt).all())

    # Changes, for views polling a few times a second.
    def data_version(self) -> ChangeToken:
        """Changes with every write anywhere; equal tokens mean nothing changed."""
        with self._read() as session:
            generation, version = session.execute(
                select(StudioState.generation, StudioState.version).where(StudioState.id == 1)).one()
            return ChangeToken(generation, version)

    def changed_since(self, token: ChangeToken | None) -> Changes:
        """Runs changed and deleted since `token` (None or another database's token: everything)."""
        with self._read() as session:
            generation, version = session.execute(
                select(StudioState.generation, StudioState.version).where(StudioState.id == 1)).one()
            now = ChangeToken(generation, version)
            full = token is None or token.generation != generation or token.version > version
            stmt = summary_select().order_by(Run.created.desc(), Run.id.desc())
            deleted: list[str] = []
            if not full:
                stmt = stmt.where(Run.version > token.version)
                deleted = list(session.scalars(
                    select(DeletedRun.id).where(DeletedRun.version > token.version).order_by(DeletedRun.id)))
            runs = to_summaries(session.connection().execute(stmt).all())
            return Changes(now, tuple(runs), tuple(deleted), full)

    # Editing runs.
    def set_status(self, ref: str, status: str, error: str | None = None, pid: int | None = None,
                   host: str | None = None, device: str | None = None, when: float | None = None) -> RunRecord:
        """Set the run's status (what its events would); leaving the queue unless status is queued."""
        if status not in STATUSES:
            raise ValueError(f"Unknown run status {status!r}; use one of {', '.join(STATUSES)}.")
        when = time.time() if when is None else when
        with self._write() as (session, version):
            run_id = self._resolve(session, ref)
            values: dict = {"status": status, "error": error}
            for name, value in (("pid", pid), ("host", host), ("device", device)):
                if value is not None:
                    values[name] = value
            if status == RunStatus.RUNNING:
                values["started"] = func.coalesce(Run.started, when)
                values["finished"] = None
            elif status in FINAL_STATUSES:
                values["finished"] = when
            self._touch(session, run_id, version, **values)
            if status != RunStatus.QUEUED:
                session.execute(delete(QueueRow).where(QueueRow.run == run_id))
            return to_record(session.get(Run, run_id))

    def mark_interrupted(self, ref: str, when: float | None = None) -> bool:
        """Mark a `running` run whose process is gone as `interrupted`; False if it was not running."""
        with self._write() as (session, version):
            run_id = self._resolve(session, ref)
            result = session.execute(
                update(Run).where(Run.id == run_id, Run.status == RunStatus.RUNNING)
                .values(status=RunStatus.INTERRUPTED, finished=time.time() if when is None else when, version=version))
            return result.rowcount == 1

    def set_tags(self, ref: str, tags: Iterable[str]) -> tuple[str, ...]:
        """Replace the run's tags (blank ones dropped, duplicates once); merged into meta.json."""
        clean = list(dict.fromkeys(t.strip() for t in tags if t and t.strip()))
        self._edit_meta(ref, lambda fields: fields.update(tags=clean))
        return tuple(clean)

    def add_tag(self, ref: str, tag: str) -> tuple[str, ...]:
        def add(fields: dict) -> None:
            if tag.strip() and tag.strip() not in fields["tags"]:
                fields["tags"].append(tag.strip())
        return tuple(self._edit_meta(ref, add)["tags"])

    def remove_tag(self, ref: str, tag: str) -> tuple[str, ...]:
        def remove(fields: dict) -> None:
            fields["tags"] = [t for t in fields["tags"] if t != tag.strip()]
        return tuple(self._edit_meta(ref, remove)["tags"])

    def set_notes(self, ref: str, text: str) -> None:
        self._edit_meta(ref, lambda fields: fields.update(notes=text or ""))

    def rename(self, ref: str, name: str) -> None:
        name = (name or "").strip()
        if not name:
            raise ValueError("A run's name cannot be empty; type a few characters.")
        with self._read() as session:
            names.check_free(session, name, other_than=self._resolve(session, ref))
        self._edit_meta(ref, lambda fields: fields.update(name=name))

    def delete_run(self, ref: str, remove_files: bool = False) -> str:
        """Remove the run's rows (children keep theirs, unlinked); with remove_files also its folder
        (a folder that is a symbolic link loses the link, not what it points to).

        Without remove_files the folder stays and the ingester does not index it again; a reindex does.
        """
        with self._write() as (session, version):
            run_id = self._resolve(session, ref)
            parent = session.execute(select(Run.parent_run).where(Run.id == run_id)).scalar_one_or_none()
            session.execute(update(Run).where(Run.parent_run == run_id).values(version=version))
            session.execute(delete(Run).where(Run.id == run_id))
            session.merge(DeletedRun(id=run_id, version=version, deleted=time.time()))
            if parent is not None:
                # A deleted probe no longer speaks for its train run's best accuracy.
                session.execute(update(Run).where(Run.id == parent)
                                .values(version=version, **headline_of(Run.id)))
        run_dir = self.run_dir(run_id)
        if remove_files and run_dir.is_symlink():
            run_dir.unlink()           # the link only: where it points may hold anything, or someone else's run
        elif remove_files and run_dir.is_dir():
            # Only ever a folder directly under <workspace>/runs, whatever the id says.
            if run_dir.resolve().parent != (self.workspace / RUNS_DIR).resolve():
                raise ValueError(f"Refusing to remove {run_dir}: it is not a run folder of {self.workspace}.")
            shutil.rmtree(run_dir)
        return run_id

    # Queue.
    def enqueue(self, ref: str, priority: int = 0, gpus: int = 0, device_request: str = "auto") -> QueueEntry:
        """Put the run in the queue (or move it there again) with status queued."""
        if device_request not in DEVICE_REQUESTS:
            raise ValueError(f"Unknown device request {device_request!r}; use one of {', '.join(DEVICE_REQUESTS)}.")
        priority, gpus = check_priority(priority), check_gpus(gpus)
        with self.meta_lock(), self._write() as (session, version):     # meta.lock first, as every edit
            run_id = self._resolve(session, ref)
            run = session.get(Run, run_id)
            if run.status == RunStatus.RUNNING and run.pid is not None:     # a worker said it runs
                raise ValueError(f"Run {run_id} is running; cancel it before queueing it again.")
            self._put_in_queue(session, run_id, priority, gpus, device_request, time.time())
            self._touch(session, run_id, version, status=RunStatus.QUEUED, error=None, finished=None,
                        gpus=int(gpus), device_request=device_request)
            self._merge_meta(run_id, priority=int(priority))
            return self._queue_entries(session, run_id)[0]

    def queued_jobs(self) -> list[QueueEntry]:
        """The queue in launch order: priority high to low, then first in, first out."""
        with self._read() as session:
            return self._queue_entries(session)

    def _queue_entries(self, session: Session, run_id: str | None = None) -> list[QueueEntry]:
        stmt = (select(QueueRow.run, Run.name, Run.kind, Run.status, QueueRow.priority, QueueRow.gpus,
                       QueueRow.device_request, QueueRow.enqueued)
                .join(Run, Run.id == QueueRow.run)
                .order_by(QueueRow.priority.desc(), QueueRow.enqueued, QueueRow.seq))
        if run_id is not None:
            stmt = stmt.where(QueueRow.run == run_id)
        return [QueueEntry(*row) for row in session.execute(stmt)]

    def set_priority(self, ref: str, priority: int) -> None:
        """Change a queued run's priority (higher runs first); mirrored to meta.json."""
        priority = check_priority(priority)
        with self.meta_lock(), self._write() as (session, version):
            run_id = self._resolve(session, ref)
            result = session.execute(update(QueueRow).where(QueueRow.run == run_id).values(priority=int(priority)))
            if result.rowcount != 1:
                raise LookupError(f"Run {run_id} is not in the queue; only queued runs have a priority.")
            self._touch(session, run_id, version)
            self._merge_meta(run_id, priority=int(priority))

    def dequeue(self, ref: str) -> bool:
        """Take the run out of the queue (its status is left to the caller); False if it was not queued."""
        with self._write() as (session, version):
            run_id = self._resolve(session, ref)
            result = session.execute(delete(QueueRow).where(QueueRow.run == run_id))
            self._touch(session, run_id, version)
            return result.rowcount == 1
