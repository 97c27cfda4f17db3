"""One-holder file locks of a workspace (ingest.lock, scheduler.lock): flock, with "pid host" inside;
and the short, waiting lock (meta.lock) under which run metadata is merged and the index swapped."""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


class ProcessLock:
    """An exclusive, non-blocking lock on a file that names its holder; released on close or process exit."""

    def __init__(self, path: Path, role: str = ""):
        """role: a word written after "pid host" that says what the holder does (lock_role), e.g. reindex."""
        self.path = Path(path)
        self.role = role
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
        fh.write(f"{os.getpid()} {socket.gethostname()} {self.role}".rstrip() + "\n")
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
    words = _held_by(path)
    if words is None:
        return None
    return f"pid {words[0]} on {words[1] if len(words) > 1 else '?'}" if words else "a process that is still starting"


def lock_role(path: Path) -> str | None:
    """The role the holder of the lock on `path` wrote (ProcessLock's role), '' for none, None when it is free."""
    words = _held_by(path)
    return None if words is None else " ".join(words[2:])


def _held_by(path: Path) -> list[str] | None:
    """The words the holder wrote into the lock file ([] while it starts), or None when it is free."""
    try:
        fh = open(path)
    except FileNotFoundError:
        return None
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return fh.read().split()
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return None


class LockTimeout(TimeoutError):
    """A waiting lock stayed taken for longer than its timeout."""


# path -> (lock file, depth): a process takes a waiting lock once, however many of its frames hold it
# (a flock taken twice through two opens of one file would wait on itself).
_held: dict[str, tuple[TextIO, int]] = {}
_held_lock = threading.RLock()


@contextmanager
def waiting_lock(path: Path, timeout_s: float = 120.0, what: str = "the workspace") -> Iterator[None]:
    """Hold the exclusive flock on `path`, waiting up to timeout_s (LockTimeout naming the holder after).

    Re-entrant within a process, and exclusive between its threads. Released on exit, or by the kernel
    when the process dies, so a killed holder never leaves it taken.
    """
    key = str(Path(path).resolve())
    deadline = time.monotonic() + timeout_s
    if not _held_lock.acquire(timeout=timeout_s):       # another thread of ours holds it
        raise LockTimeout(f"{what} stayed locked by another thread of this process for {timeout_s:g} s.")
    try:
        fh, depth = _held.get(key, (None, 0))
        if fh is None:
            fh = open(key, "a+")
            try:
                while True:
                    try:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            holder = lock_holder(Path(key)) or "another process"
                            raise LockTimeout(f"{what} stayed locked by {holder} for {timeout_s:g} s; "
                                              "try again when it has finished.") from None
                        time.sleep(0.01)
            except BaseException:
                fh.close()
                raise
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()} {socket.gethostname()}\n")
            fh.flush()
        _held[key] = (fh, depth + 1)
        try:
            yield
        finally:
            fh, depth = _held.pop(key)
            if depth > 1:
                _held[key] = (fh, depth - 1)
            else:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
                fh.close()
    finally:
        _held_lock.release()
