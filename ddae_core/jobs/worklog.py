"""The worker's log.txt in words: what it does, when it was cancelled or resumed, and a summary at the end.

events.jsonl is for machines; a person following a run (the app's log pane, `tail -f log.txt`) reads
these lines. The worker prints them through the Reporter's echo; cancel and resume requests made
from outside (the app, the CLI) add their own line with `note()`.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from ..rundir import LOG, ArtifactKind, EventType, RunStatus
from ..rundir.figures import clock, percent

PROGRESS_EVERY_S = 60.0         # a progress line at most this often (and at every tenth of a stage)
SUMMARY_KEYS = 12               # metrics named in the summary, at most


class _Stdout(logging.StreamHandler):
    """Writes to whatever sys.stdout is when a line comes (log.txt in a worker, a terminal, a test's capture)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def job_logging(name: str = "ddae_core") -> logging.Logger:
    """The job's own lines (`logging.getLogger(__name__).info(...)` in the engine) on stdout, bare, as its
    print()s were: in a worker that is log.txt, under `ddae train` the terminal. Once per process."""
    logger = logging.getLogger(name)
    if not any(isinstance(h, _Stdout) for h in logger.handlers):
        handler = _Stdout()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def stamp(t: float | None = None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t if t is not None else time.time()))


def note(run_dir: str | Path, text: str) -> None:
    """Append one dated line to the run's log.txt (a cancel or resume asked for from outside the worker)."""
    try:
        with open(Path(run_dir) / LOG, "a", encoding="utf-8") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
    except OSError:
        pass                    # the log is for reading; the event files hold the truth


def _number(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "nan"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class LogEcho:
    """The Reporter's echo in a worker: a readable line for each event worth a line, a summary at the end."""

    def __init__(self, out: TextIO | None = None):
        self.out = out
        self.silent = os.environ.get("RANK", "0") != "0"     # under torchrun, rank 0 speaks for all
        self.started: float | None = None
        self.latest: dict[str, tuple[int, float | None]] = {}       # metric key -> (step, value)
        self.cells: dict[tuple[int, str], float] = {}
        self.progress: tuple[str, int, int] | None = None           # stage, done, total
        self._printed: tuple[str, int, float] | None = None         # stage, tenth, time of the last line

    def __call__(self, event: dict) -> None:
        if self.silent:
            return
        kind = event.get("type")
        t = event.get("time")
        if kind == EventType.STATUS:
            self._status(event, t)
        elif kind == EventType.PROGRESS:
            self._progress(event, t)
        elif kind == EventType.METRIC:
            self.latest[event.get("key", "?")] = (event.get("step", 0), event.get("value"))
        elif kind == EventType.GRID_CELL and event.get("accuracy") is not None:
            self.cells[(int(event.get("timestep", 0)), str(event.get("layer")))] = float(event["accuracy"])
        elif kind == EventType.ARTIFACT and event.get("kind") == ArtifactKind.CHECKPOINT:
            self._line(t, f"checkpoint saved at step {event.get('step')}")

    def _status(self, event: dict, t: float | None) -> None:
        status = event.get("status")
        if status == RunStatus.RUNNING:
            self.started = t or time.time()
            where = ", ".join(f"{k} {event[k]}" for k in ("device", "host", "pid") if event.get(k) is not None)
            resumed = event.get("resumed_from")
            self._line(t, f"running ({where})" + (f"; resumed from the checkpoint of step {resumed}"
                                                  if resumed is not None else ""))
            return
        took = f" after {clock((t or time.time()) - self.started)}" if self.started else ""
        where = f" at {self.progress[0]} {self.progress[1]}/{self.progress[2]}" if self.progress else ""
        if status == RunStatus.CANCELLED:
            self._line(t, f"cancelled{where}{took}; Resume queues it again "
                          "(a train run continues from its last checkpoint)")
        elif status == RunStatus.FAILED:
            self._line(t, f"failed{where}{took}: {event.get('error') or 'see the lines above'}")
        else:
            self._line(t, f"{status}{took}")
        self._summary(t)

    def _progress(self, event: dict, t: float | None) -> None:
        stage, done, total = str(event.get("stage") or ""), int(event.get("done", 0)), int(event.get("total", 0))
        self.progress = (stage, done, total)
        now = t or time.time()
        tenth = int(10 * done / total) if total else 0
        last = self._printed
        if last is None or last[0] != stage or tenth > last[1] or now - last[2] >= PROGRESS_EVERY_S:
            self._printed = (stage, tenth, now)
            share = f" ({done / total:.0%})" if total else ""
            self._line(t, f"{stage or 'progress'} {done}/{total}{share}")

    def _summary(self, t: float | None) -> None:
        parts = []
        if self.progress:
            parts.append(f"{self.progress[0] or 'progress'} {self.progress[1]}/{self.progress[2]}")
        for key in sorted(self.latest)[:SUMMARY_KEYS]:
            step, value = self.latest[key]
            parts.append(f"{key} {_number(value)} (step {step})")
        if self.cells:
            (timestep, layer), best = max(self.cells.items(), key=lambda kv: kv[1])
            parts.append(f"{len(self.cells)} grid cells, best {layer} at t={timestep} {percent(best)}")
        self._line(t, "summary: " + ("; ".join(parts) if parts else "nothing was measured"))

    def _line(self, t: float | None, text: str) -> None:
        out = self.out or sys.stdout
        out.write(f"{stamp(t)} {text}\n")
        out.flush()
