"""The one atomic write of the project: a temp file beside the target, fsync, then rename over it.

A reader of the target sees the old file or the whole new one, never half of either; a failure (a full
disk, a kill, an exception in the writer) leaves the old file untouched and no temp file behind.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO


def temp_path(path: Path) -> Path:
    """A hidden, unique name in `path`'s folder, so that the final rename stays on one file system."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}")


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
