"""Rebuild studio.sqlite from the run folders alone (`ddae reindex`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from . import engine as engines
from .ingest import Ingester
from .rundir import DB_NAME
from .store import Store

log = logging.getLogger(__name__)

_SIDE_FILES = ("", "-wal", "-shm")


def reindex(workspace: str | Path) -> int:
    """Build a fresh index from runs/ and swap it in; the old one is kept as studio.sqlite.old.

    Holds the workspace's ingest lock throughout (IngestLockError if an ingester runs); other
    processes should have the workspace closed. Returns the number of runs indexed.
    """
    workspace = Path(workspace).expanduser().resolve()
    target = workspace / DB_NAME
    fresh = workspace / f"{DB_NAME}.new"
    _remove(fresh)
    store = Store.open(workspace, db_path=fresh)
    try:
        with Ingester(store) as ingester:
            # meta.json is applied as each folder registers; each pass reads up to its byte limit per run.
            while ingester.ingest_once().runs_read:
                pass
            count = store.count_runs()
            store.close()                       # the last connection closing folds the WAL into the file
            for suffix in _SIDE_FILES:          # keep the old index (and its WAL) as a set
                old = Path(f"{target}{suffix}")
                if old.exists():
                    os.replace(old, f"{workspace / DB_NAME}.old{suffix}")
                else:
                    Path(f"{workspace / DB_NAME}.old{suffix}").unlink(missing_ok=True)
            os.replace(fresh, target)
            engines.reconnect(target)           # this process's open Stores now read the new file
    except BaseException:
        store.close()
        _remove(fresh)                          # a failed rebuild leaves the old index as it was, and no .new
        raise
    finally:
        store.close()
    log.info("Reindexed %d runs of %s.", count, workspace)
    return count


def _remove(path: Path) -> None:
    for suffix in _SIDE_FILES:
        Path(f"{path}{suffix}").unlink(missing_ok=True)
