"""The one refresh timer of the window: polls the Store's change token and tells the views.

A poll costs one tiny query when nothing changed. When something did, changed_since() gives
the changed runs as plain records and each view updates in place (the run view then reads only
the points after the last step it has). Views never open the Store: they get records from here
or from their controller.
"""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, QTimer, Signal

from db import Changes, ChangeToken, Store

log = logging.getLogger(__name__)

REFRESH_HZ = 10     # pyqtgraph's advice is at most 20-30 Hz; the ingester writes twice a second


class LiveHub(QObject):
    """Owns the refresh timer; emits `changed` with the runs that changed and `second` once a second."""

    changed = Signal(object)    # db.Changes
    second = Signal()           # for clocks, the system strip and log tails
    problem = Signal(str)

    def __init__(self, store: Store, refresh_hz: float = REFRESH_HZ, parent=None):
        super().__init__(parent)
        self.store = store
        # Views load their first page themselves; from here on only changes are sent.
        self.token: ChangeToken | None = store.data_version()
        self._last_second = time.monotonic()
        self._failing = False
        self.timer = QTimer(self)
        self.timer.setInterval(int(1000 / refresh_hz))
        self.timer.timeout.connect(self.poll)

    def start(self) -> None:
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def poll(self) -> Changes | None:
        """Check for changes now; returns them (None when nothing changed)."""
        now = time.monotonic()
        if now - self._last_second >= 1.0:
            self._last_second = now
            self.second.emit()
        try:
            if self.store.data_version() == self.token:
                return None
            changes = self.store.changed_since(self.token)
        except Exception as exc:  # noqa: BLE001 - a locked or vanished database: say so once, keep polling
            if not self._failing:
                self._failing = True
                log.warning("Polling the index failed: %s", exc)
                self.problem.emit(f"Reading the workspace index failed ({exc.__class__.__name__}); retrying.")
            return None
        self._failing = False
        self.token = changes.token
        self.changed.emit(changes)
        return changes
