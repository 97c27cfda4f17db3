"""What the queue and runs commands share: the ingested Store, and plain-text tables."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from ..engine.errors import UserError
from .common import storage_error, workspace_of


@contextmanager
def open_store(args, refresh: bool = True):
    """The workspace's Store, ingested once first (unless the scheduler holds the ingest lock: then it
    waits for an index that lost its file to be rebuilt by that process). A damaged index or a full disk
    is one sentence (storage_error)."""
    from sqlalchemy.exc import DatabaseError

    from db import SchemaError, Store

    from ..jobs.queue_ops import refresh as refresh_index, wait_for_rebuild
    from ..rundir import RunDirError

    workspace = workspace_of(args)
    try:
        store = Store.open(workspace)
    except SchemaError as exc:
        raise UserError(str(exc)) from None
    except (OSError, DatabaseError) as exc:
        raise storage_error(exc, workspace) or exc from None
    try:
        if refresh:
            try:
                if not refresh_index(store):
                    wait_for_rebuild(store)
            except RunDirError as exc:
                print(f"warning: {exc}", file=sys.stderr)
        yield workspace, store
    except (OSError, DatabaseError) as exc:
        error = storage_error(exc, workspace)
        if error is None:
            raise
        raise error from None
    finally:
        store.close()


def when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def cut(text: str | None, width: int) -> str:
    text = "-" if text is None or text == "" else str(text).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "~"


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
