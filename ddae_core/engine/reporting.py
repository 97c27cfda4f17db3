"""How a job talks to the outside: report()/progress()/should_stop() over the run's events.jsonl.

The worker is the only writer of its events.jsonl; every line is flushed at once so a crash loses
at most the line being written, and sync() fsyncs at checkpoints. A stop request is the STOP file
in the run directory or SIGTERM (installed by the worker), and, in the foreground, Ctrl-C.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from ..rundir import EVENTS, STOP, ArtifactKind, EventType, RunStatus, ends_torn

STOP_FILE = STOP        # the name callers outside the engine know it by


class Reporter:
    def __init__(self, run_dir: str | Path, echo: Callable[[dict], None] | None = None, enabled: bool = True):
        """`echo` sees every event (the CLI's progress line); `enabled=False` writes nothing (DDP ranks > 0)."""
        self.run_dir = Path(run_dir)
        self.echo = echo
        self.enabled = enabled
        self._file = open(self.run_dir / EVENTS, "a", encoding="utf-8") if enabled else None
        if self._file is not None:
            self._end_torn_line()
        self._stop_requested = False
        self._last_progress: tuple[str, int] | None = None
        self._last_progress_time = 0.0

    def _end_torn_line(self) -> None:
        """A worker killed mid-line left a last line without its newline: end it, so that the first line
        of this (resumed) run is not glued to it and lost with it."""
        if self._file is not None and ends_torn(self.run_dir / EVENTS):
            self._file.write("\n")
            self._file.flush()

    # Writing.
    def event(self, type_: str, **fields) -> None:
        record = {"type": type_, "time": round(time.time(), 3), **fields}
        if self._file is not None:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._file.flush()
        if self.echo is not None:
            self.echo(record)

    def report(self, key: str, value: float, step: int) -> None:
        """One point of the curve `key` (e.g. loss/train) at `step`.

        A NaN or infinite value is kept as null (the index's NaN), not dropped: a gap in the curve is
        the visible sign that something diverged. JSON itself has no NaN.
        """
        value = float(value)
        self.event(EventType.METRIC, key=key, step=int(step), value=value if math.isfinite(value) else None)

    def progress(self, done: int, total: int, stage: str = "") -> None:
        """Written only when it visibly changes: a new stage, the end, or at most twice a second."""
        now = time.monotonic()
        if (self._last_progress and self._last_progress[0] == stage and done < total
                and now - self._last_progress_time < 0.5):
            return
        self._last_progress, self._last_progress_time = (stage, done), now
        self.event(EventType.PROGRESS, done=int(done), total=int(total), stage=stage)

    def status(self, status: RunStatus | str, **fields) -> None:
        self.event(EventType.STATUS, status=status, **fields)

    def image(self, key: str, step: int, path: str | Path) -> None:
        self.event(EventType.IMAGE, key=key, step=int(step), path=self._relative(path))

    def artifact(self, kind: ArtifactKind | str, path: str | Path, step: int | None = None) -> None:
        self.event(EventType.ARTIFACT, kind=kind, step=step, path=self._relative(path))

    def grid(self, timesteps: list[int], layers: list[str], labels: dict | None = None) -> None:
        self.event(EventType.GRID, timesteps=list(timesteps), layers=list(layers), labels=labels or {})

    def grid_cell(self, layer: str, timestep: int, accuracy: float) -> None:
        self.event(EventType.GRID_CELL, layer=layer, timestep=int(timestep), accuracy=round(float(accuracy), 6))

    def sync(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _relative(self, path: str | Path) -> str:
        path = Path(path)
        try:
            return path.resolve().relative_to(self.run_dir.resolve()).as_posix()
        except ValueError:
            return path.as_posix()

    # Stopping.
    def request_stop(self) -> None:
        self._stop_requested = True

    def should_stop(self) -> bool:
        if not self._stop_requested and (self.run_dir / STOP_FILE).exists():
            self._stop_requested = True
        return self._stop_requested

    def install_signal_handlers(self) -> None:
        """SIGTERM (and SIGINT) become a stop request: the job saves and exits as cancelled."""
        def handler(signum, frame):
            self.request_stop()
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
