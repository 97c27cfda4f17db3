"""The app's one way to work off the GUI thread: a Worker runs a function on its own QThread.

In the spirit of Orange's concurrent.py and napari's thread_worker: the work function gets the
worker as its state (`stopping`, `pause`, `deliver`) and never touches a widget; what it delivers
reaches receivers on the GUI thread through queued signals, and a stopped worker's late results
are dropped. `stop()` asks and waits, so no thread outlives its window (the tests fail on a leaked
QThread). The scheduler, the store reader and the Classify view's inference all run this way.

A Worker is a QThread (restartable after its function returns); give it a function, or subclass it
and override `work()`. `Latest` is the mailbox of a worker that serves requests, keeping only the
newest one.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

import shiboken6
from PySide6.QtCore import QThread, Signal

log = logging.getLogger(__name__)

T = TypeVar("T")

_workers: weakref.WeakSet = weakref.WeakSet()


def running_workers() -> list[Worker]:
    """Workers whose thread is still running (for tests that check nothing is left behind).

    A worker whose Qt parent was deleted (a closed window's scheduler) may keep its Python wrapper
    until the GUI thread's garbage collection runs; its thread is gone with it, so it is skipped.
    """
    return [w for w in list(_workers) if shiboken6.isValid(w) and w.isRunning()]


class Worker(QThread):
    """Runs `work(worker)` (or the subclass's `work()`) off the GUI thread until it returns or is stopped."""

    delivered = Signal(object)      # each deliver(value), on the receivers' (GUI) thread
    failed = Signal(str)            # the error that ended the work, in one sentence

    def __init__(self, name: str, work: Callable[[Worker], None] | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName(name)
        self._work = work
        self._stop = threading.Event()
        self._wake = threading.Event()
        _workers.add(self)

    # Called from the GUI thread.
    def wake(self) -> None:
        """End the current pause() now (e.g. poll at once rather than at the next interval)."""
        self._wake.set()

    def request_stop(self) -> None:
        """Ask the work to end at its next check; results delivered from now on are dropped."""
        self._stop.set()
        self._wake.set()

    def stop(self, timeout_ms: int = 30_000) -> bool:
        """Ask the work to end and wait for it; False if it is still running after timeout_ms."""
        self.request_stop()
        return self.wait(timeout_ms)

    # Called from the worker's thread.
    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def pause(self, seconds: float) -> None:
        """Wait `seconds`, or less when woken or asked to stop."""
        self._wake.wait(seconds)
        self._wake.clear()

    def deliver(self, value: object) -> None:
        """Hand `value` to the GUI thread (as `delivered`), unless the worker is stopping."""
        if not self.stopping:
            self.delivered.emit(value)

    def every(self, seconds: float, tick: Callable[[], None], failure: str) -> None:
        """Run tick() every `seconds` until stopped; a failing tick is logged (`failure`) and the loop goes on."""
        while not self.stopping:
            try:
                tick()
            except Exception:
                log.exception(failure)
            self.pause(seconds)

    def work(self) -> None:
        if self._work is None:
            raise NotImplementedError("give Worker a function or override work()")
        self._work(self)

    def run(self) -> None:
        try:
            self.work()
        except Exception as exc:
            log.exception("Background work %r failed", self.objectName())
            self.failed.emit(f"{self.objectName()} stopped: {exc.__class__.__name__}: {exc}")


class Latest(Generic[T]):
    """A one-slot mailbox from the GUI thread to a Worker: a new request replaces the waiting one.

    A fast-moving slider therefore never queues work. The worker's loop take()s until it gets None
    (closed, or idle for a while, so an unused thread ends); put() says when a loop must be started.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self._alive = False             # a loop is taking, or about to (guarded by _cond)

    def put(self, item: T) -> bool:
        """Replace the waiting request with `item`; True when no loop is alive to take it (start one)."""
        with self._cond:
            self._item = item
            self._cond.notify()
            start = not self._alive and not self._closed
            if start:
                self._alive = True
        return start

    def take(self, idle_s: float) -> T | None:
        """The next request; None when closed or after idle_s without one (the loop should then return)."""
        with self._cond:
            while self._item is None and not self._closed:
                if not self._cond.wait(idle_s) and self._item is None:
                    self._alive = False
                    return None
            if self._closed:
                self._alive = False
                return None
            item, self._item = self._item, None
            return item

    def waiting(self) -> T | None:
        """The request waiting to be taken, if any."""
        with self._cond:
            return self._item

    def abandoned(self) -> None:
        """The loop ended without take() returning None (it raised): the next put() starts another."""
        with self._cond:
            self._alive = False

    def close(self) -> None:
        """Drop the waiting request and make take() return None from now on."""
        with self._cond:
            self._closed = True
            self._item = None
            self._cond.notify()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed
