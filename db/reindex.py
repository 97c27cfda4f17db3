"""Rebuild studio.sqlite from the run folders alone (`ddae reindex`)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ddae_core.rundir import (
    DB_NAME,
    INGEST_LOCK,
    META_LOCK,
    RUNS_DIR,
    SPEC,
    ProcessLock,
    remove_dead_temps,
    waiting_lock,
)

from . import engine as engines
from .ingest import Ingester, IngestLockError
from .store import Store

log = logging.getLogger(__name__)

_SIDE_FILES = ("", "-wal", "-shm")
_FRESH = f"{DB_NAME}.new"           # + "-<pid>": the index a reindex builds, beside the live one
REINDEX_ROLE = "reindex"            # what a reindex writes into ingest.lock after its pid and host


def reindex(workspace: str | Path) -> int:
    """Build a fresh index from runs/ and swap it in; the old one is kept as studio.sqlite.old.

    Takes the workspace's ingest lock before it touches anything (IngestLockError, with nothing changed, if
    another process ingests), and meta.lock until the swap, so a tag or note given meanwhile waits and then
    lands in the new index. Returns the number of runs indexed.
    """
    workspace = Path(workspace).expanduser().resolve()
    target = workspace / DB_NAME
    lock = ProcessLock(workspace / INGEST_LOCK, role=REINDEX_ROLE)
    if not lock.acquire():
        raise IngestLockError(f"{workspace} is already being ingested by {lock.holder() or 'another process'}; "
                              "only one ingester may run per workspace.")
    try:
        with waiting_lock(workspace / META_LOCK, what=f"The run metadata of {workspace}"):
            _remove_leftovers(workspace)        # of a reindex killed before its swap: we hold the lock now
            _remove_dead_temps(workspace / RUNS_DIR)
            fresh = workspace / f"{_FRESH}-{os.getpid()}"
            try:
                store = Store.open(workspace, db_path=fresh)
            except BaseException:
                _remove(fresh)
                raise
            try:
                ingester = Ingester(store, lock=lock)
                # meta.json is applied as each folder registers; each pass reads up to its byte limit per run.
                while ingester.ingest_once().runs_read:
                    pass
                count = store.count_runs()
            except BaseException:
                store.close()
                _remove(fresh)                  # a failed rebuild leaves the old index as it was, and no .new
                raise
            store.close()                       # the last connection closing folds the WAL into the file
            _swap(workspace, fresh, target)
            engines.reconnect(target)           # this process's open Stores now read the new file
    finally:
        lock.release()
    log.info("Reindexed %d runs of %s.", count, workspace)
    return count


def rebuild_by_ingester(workspace: str | Path, timeout_s: float = 60.0) -> int:
    """Have the process that holds the ingest lock (a scheduler, the app) rebuild the index; its run count.

    The live index is moved aside as studio.sqlite.old; that process's ingester notices its file is gone and
    fills a new one from the run folders (Ingester.ingest_once). TimeoutError if it has not within timeout_s.
    """
    workspace = Path(workspace).expanduser().resolve()
    target = workspace / DB_NAME
    with waiting_lock(workspace / META_LOCK, what=f"The run metadata of {workspace}"):
        _move_aside(workspace, target)
    folders = list((workspace / RUNS_DIR).glob(f"*/{SPEC}"))
    with Store.open(workspace) as store:
        empty = store.data_version()
        deadline = time.monotonic() + timeout_s
        while folders and store.data_version() == empty and not store.count_runs():
            ingester = Ingester(store)
            if ingester.acquire():              # it has let go meanwhile: fill the index here
                try:
                    while ingester.ingest_once().runs_read:
                        pass
                finally:
                    ingester.release()
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the process holding {workspace / INGEST_LOCK} did not rebuild the index "
                                   f"within {timeout_s:g} s")
            time.sleep(0.1)
        return store.count_runs()


def _swap(workspace: Path, fresh: Path, target: Path) -> None:
    _move_aside(workspace, target)
    os.replace(fresh, target)


def _move_aside(workspace: Path, target: Path) -> None:
    """The index (and its WAL) as studio.sqlite.old, as a set; a process that has it open notices (db.engine.follow)."""
    for suffix in _SIDE_FILES:
        old = Path(f"{target}{suffix}")
        if old.exists():
            os.replace(old, f"{workspace / DB_NAME}.old{suffix}")
        else:
            Path(f"{workspace / DB_NAME}.old{suffix}").unlink(missing_ok=True)


def _remove_leftovers(workspace: Path) -> None:
    """The half-built indexes of reindexes that died (studio.sqlite.new-<pid>, and the older shared name)."""
    for path in workspace.glob(f"{_FRESH}*"):
        path.unlink(missing_ok=True)


def _remove_dead_temps(runs: Path) -> None:
    """Temp files of atomic writes killed mid-write (a checkpoint is ~0.5 GB) in each run folder and its folders."""
    for run_dir in (p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else ():
        remove_dead_temps(run_dir)
        for sub in (p for p in run_dir.iterdir() if p.is_dir() and not p.is_symlink()):
            remove_dead_temps(sub)


def _remove(path: Path) -> None:
    for suffix in _SIDE_FILES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
