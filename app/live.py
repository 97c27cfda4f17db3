"""The window's one refresh loop: a reader thread polls the Store and does the views' reads off the GUI thread.

Every 100 ms the reader checks the Store's change token (one tiny query). When something changed
it takes the changed runs as plain records, then runs each watcher's `read` on that thread (the
Run view reads only the points after its last step, the Queue its rows) and hands the results to
the GUI thread, which only changes widgets. A watcher replaced or removed meanwhile (another run
shown) never sees its late result. A watcher may ask for a read with no change (its view chose other
runs: `request`), and is paused while its view is hidden (it reads once on `resume` if anything
changed meanwhile). Clocks, log tails and the system strip tick once a second.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from db import Changes, ChangeToken, Store

from .background import Worker

log = logging.getLogger(__name__)

REFRESH_HZ = 10     # pyqtgraph's advice is at most 20-30 Hz; the ingester writes twice a second
STAGGER_MS = 60     # between two watchers' updates, so their repaints fall in different frames


@dataclass
class _Watcher:
    serial: int
    read: Callable[[Changes | None], Any]   # on the reader thread; given None: read anew; returns None: nothing
    apply: Callable[[Any], None]            # on the GUI thread
    owed: bool = False                      # read at the next cycle, changes or not
    paused: bool = False                    # its view is hidden: a change only makes the read owed


class LiveHub(QObject):
    """Change polling for the window: `changed` (GUI thread) with each Changes, watchers for heavier reads.

    Every answer is shown, in the order it was read: the changes are deltas and the Run view's
    updates carry only new points, so none may be skipped or overtaken (a poll() on the GUI
    thread drains what the reader queued before it).
    """

    changed = Signal(object)            # db.Changes
    second = Signal()                   # once a second: clocks, log tails, the system strip
    problem = Signal(str)
    delivered = Signal()                # the reader queued answers (reader -> GUI thread)

    def __init__(self, store: Store, refresh_hz: float = REFRESH_HZ, parent=None):
        super().__init__(parent)
        self.store = store
        # Views load their first page themselves; from here on only changes are sent.
        self.token: ChangeToken | None = store.data_version()
        self._watchers: dict[str, _Watcher] = {}
        self._serial = 0
        self._lock = threading.Lock()       # one cycle at a time (reader thread or poll())
        self._state = threading.Lock()      # the watchers and the answers; never held across a read
        self._failing = False
        self._pending: deque[tuple[Changes | None, dict[str, tuple[int, Any]]]] = deque()     # read, not shown yet
        self._answers: dict[str, deque[tuple[int, Any]]] = {}                        # per watcher, in order
        self._flush_scheduled: set[str] = set()
        self.delivered.connect(lambda: self._drain(immediate=False))
        interval_s = 1.0 / refresh_hz
        self._reader = Worker("ddae-store-reader", lambda worker: worker.every(
            interval_s, self._read_once, "Reading the workspace index failed"))
        self.clock = QTimer(self)
        self.clock.setInterval(1000)
        self.clock.timeout.connect(self.second)

    def start(self) -> None:
        self._reader.start()
        self.clock.start()

    def stop(self) -> None:
        """Stop the reader thread (waits for its current cycle) and the clock."""
        self.clock.stop()
        self._reader.stop(10_000)

    # Watchers.
    def watch(self, name: str, read: Callable[[Changes | None], Any], apply: Callable[[Any], None], *,
              request: bool = False, paused: bool = False) -> None:
        """Run read(changes) on the reader thread after each change, then apply(result) on the GUI thread.

        request: also read once at the next cycle, read(None), whether or not anything changed (a first load).
        paused: start paused (see pause()).
        """
        with self._state:
            self._serial += 1
            self._watchers[name] = _Watcher(self._serial, read, apply, owed=request, paused=paused)
        if request and not paused:
            self.wake()

    def unwatch(self, name: str) -> None:
        with self._state:
            self._watchers.pop(name, None)

    def request(self, name: str) -> None:
        """Ask the watcher for read(None) at the next cycle, whether or not anything changed."""
        with self._state:
            watcher = self._watchers.get(name)
            if watcher is not None:
                watcher.owed = True
        self.wake()

    def pause(self, name: str) -> None:
        """Skip the watcher's reads while its view is hidden; a change meanwhile makes resume() read once."""
        with self._state:
            watcher = self._watchers.get(name)
            if watcher is not None:
                watcher.paused = True

    def resume(self, name: str) -> None:
        with self._state:
            watcher = self._watchers.get(name)
            if watcher is None or not watcher.paused:
                return
            watcher.paused = False
            owed = watcher.owed
        if owed:
            self.wake()

    # Polling.
    def _read_once(self) -> None:
        """The reader thread's tick: one cycle, and the GUI thread told when it queued answers."""
        if self.cycle():
            self.delivered.emit()

    def cycle(self) -> bool:
        """One poll (any thread): queue the changes and each watcher's answer; False if nothing changed."""
        with self._lock:
            with self._state:
                owed = any(w.owed and not w.paused for w in self._watchers.values())
            try:
                changes = None if self.store.data_version() == self.token else self.store.changed_since(self.token)
            except Exception as exc:  # noqa: BLE001 - a locked or vanished database: say so once
                if not self._failing:
                    self._failing = True
                    self.problem.emit(f"Reading the workspace index failed ({exc.__class__.__name__}); retrying.")
                return False
            self._failing = False
            if changes is None and not owed:
                return False
            if changes is not None:
                self.token = changes.token
            reads = []
            with self._state:
                for name, watcher in self._watchers.items():
                    if watcher.paused or not (watcher.owed or changes is not None):
                        watcher.owed = watcher.owed or changes is not None
                        continue
                    reads.append((name, watcher, watcher.owed))
                    watcher.owed = False        # a request() from here on is read at the next cycle
            results = {}
            for name, watcher, asked in reads:
                try:
                    result = watcher.read(None if asked else changes)
                except Exception:
                    log.exception("Watcher %s failed to read", name)
                    continue
                if result is not None:
                    results[name] = (watcher.serial, result)
            with self._state:
                self._pending.append((changes, results))
            return True

    def poll(self) -> bool:
        """Poll now on the calling (GUI) thread and show everything read so far; for instant feedback."""
        found = self.cycle()
        self._drain(immediate=True)
        return found

    def wake(self) -> None:
        """Make the reader poll now instead of at its next interval."""
        self._reader.wake()

    def _drain(self, immediate: bool) -> None:
        """Show queued answers in read order; watchers a few frames apart unless `immediate`."""
        while True:
            with self._state:
                if not self._pending:
                    break
                changes, results = self._pending.popleft()
            if changes is not None:         # only asked-for reads this cycle
                self.changed.emit(changes)
            for name, answer in results.items():
                self._answers.setdefault(name, deque()).append(answer)
        waiting = [name for name, answers in self._answers.items() if answers]
        for i, name in enumerate(waiting):
            if immediate or i == 0:
                self._flush(name)
            elif name not in self._flush_scheduled:
                self._flush_scheduled.add(name)
                QTimer.singleShot(i * STAGGER_MS, self, lambda n=name: self._flush(n))

    def _flush(self, name: str) -> None:
        self._flush_scheduled.discard(name)
        answers = self._answers.get(name)
        while answers:
            serial, result = answers.popleft()
            watcher = self._watchers.get(name)
            if watcher is None or watcher.serial != serial:
                continue                # a late answer for a view that now shows something else
            try:
                watcher.apply(result)
            except Exception:
                log.exception("Watcher %s failed to apply", name)
