"""The one atomic write of the project: a temp file beside the target, fsync, then rename over it.

A reader of the target sees the old file or the whole new one, never half of either; a failure (a full
disk, a kill, an exception in the writer) leaves the old file untouched and no temp file behind.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

# .<name>.tmp-<host>-<pid>-<6 hex>; older names lack the host (written on this one, as far as we can tell).
_TEMP_RE = re.compile(r"^\..+\.tmp-(?:(?P<host>.+)-)?(?P<pid>\d+)-[0-9a-f]{6}$")


def temp_path(path: Path) -> Path:
    """A hidden, unique name in `path`'s folder, so that the final rename stays on one file system.

    It names the writer's host and pid, so that the temp file of a writer killed mid-write can be told from
    one being written (remove_dead_temps).
    """
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}")


def remove_dead_temps(folder: str | Path) -> list[Path]:
    """Remove the temp files in `folder` left by atomic writes whose process died (a kill mid-write).

    Only those written on this host by a pid that no longer exists: a live writer's, or another host's,
    are left alone. Returns what was removed.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    host = socket.gethostname()
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if match is None or match["host"] not in (None, host) or _alive(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("Could not remove %s, left by a writer that died (%s).", entry.path, exc.strerror or exc)
            continue
        removed.append(Path(entry.path))
    if removed:
        log.info("Removed %d temp file(s) left in %s by writers that died.", len(removed), folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):    # gone, or never a pid
        return False
    except PermissionError:                        # another user's process
        return True
    return True


def atomic_write(path: str | Path, write: Callable[[IO], object], *, binary: bool = False,
                 fsync: bool = True) -> None:
    """write(file) into a temp file beside `path`, fsync, then rename over `path`.

    binary: the file is opened "wb", else "w" in UTF-8. fsync=False for caches that can be rebuilt, where
    the rename alone (no torn file, ever) is enough and the data need not survive a power cut.
    Errors are the writer's or the OS's (ENOSPC for a full disk), raised unchanged once the temp file is gone.
    """
    path = Path(path)
    tmp = temp_path(path)
    # O_EXCL: never write through a name someone else made; 0o666: the user's umask decides, as for open().
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")) as fh:
            write(fh)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """`text` as the whole of `path` (UTF-8), atomically."""
    atomic_write(path, lambda fh: fh.write(text))


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    """`data` as the whole of `path`, atomically."""
    atomic_write(path, lambda fh: fh.write(data), binary=True, fsync=fsync)


def fsync_dir(folder: str | Path) -> None:
    """Make a rename inside `folder` durable too; quietly nothing where the file system cannot."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
