"""How every view writes a run: its status colour, a timestamp, and the table role that carries its id."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt

from ddae_core.rundir import RunStatus

ID_ROLE = Qt.ItemDataRole.UserRole + 1        # the run id of a table row

STATUS_COLORS = {
    RunStatus.QUEUED: "#8a8f98", RunStatus.RUNNING: "#1f77b4", RunStatus.DONE: "#2ca02c",
    RunStatus.FAILED: "#d62728", RunStatus.CANCELLED: "#9467bd", RunStatus.INTERRUPTED: "#ff7f0e",
}


def when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else ""
