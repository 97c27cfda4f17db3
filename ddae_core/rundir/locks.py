"""One-holder file locks of a workspace (ingest.lock, scheduler.lock): flock, with "pid host" inside."""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import TextIO


class ProcessLock:
    """An exclusive, non-blocking lock on a file that names its holder; released on close or process exit."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file: TextIO | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> bool:
        """Take the lock without waiting; False if another holder has it."""
        if self._file is not None:
            return True
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()} {socket.gethostname()}\n")
        fh.flush()
        self._file = fh
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def holder(self) -> str | None:
        """'pid 1234 on host' of whoever holds the lock (this process included), or None when nobody does."""
        if self._file is not None:
            return f"pid {os.getpid()} on {socket.gethostname()}"
        return lock_holder(self.path)


def lock_holder(path: Path) -> str | None:
    """'pid 1234 on host' written by the process holding the lock on `path`, or None when it is free."""
    try:
        fh = open(path)
    except FileNotFoundError:
        return None
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            pid, _, host = fh.read().strip().partition(" ")
            return f"pid {pid} on {host}" if pid else "a process that is still starting"
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return None
