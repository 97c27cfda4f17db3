"""Parsing events.jsonl (docs/run-directory.md) into one run's batch of rows, without the database."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field

from ddae_core.rundir import ArtifactKind, EventType, RunStatus

from .records import FINAL_STATUSES, STATUSES

log = logging.getLogger("db.ingest")

_INT64 = 2**63
_ARTIFACT_KINDS = tuple(sorted(ArtifactKind))       # sorted: the order the warning has always named them in
MAX_WARNINGS_PER_PASS = 5          # per run; the rest are counted, not logged
_DECODER = json.JSONDecoder()


class BadEvent(ValueError):
    """A line whose fields are missing or of the wrong type."""


def _int(ev: dict, name: str, required: bool = True) -> int | None:
    value = ev.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadEvent(f"field {name!r} must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise BadEvent(f"field {name!r} must be an integer")
        value = int(value)
    if not -_INT64 <= value < _INT64:
        raise BadEvent(f"field {name!r} is out of range")
    return value


def _float(ev: dict, name: str, required: bool = True) -> float | None:
    value = ev.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadEvent(f"field {name!r} must be a number")
    return float(value)


def _str(ev: dict, name: str, required: bool = True) -> str | None:
    value = ev.get(name)
    if value is None and not required:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)          # a layer called 6 is the layer "6"
    if not isinstance(value, str) or (required and not value):
        raise BadEvent(f"field {name!r} must be a non-empty string")
    return value


def _nan_to_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


@dataclass
class StatusUpdate:
    status: str
    error: str | None = None
    pid: int | None = None
    host: str | None = None
    device: str | None = None
    first_started: float | None = None     # time of the first `running` in this batch
    finished: float | None = None          # time of the last status, when final
    changes: int = 0


@dataclass
class RunBatch:
    """Everything one pass read from one run's events.jsonl."""

    run: str
    start_offset: int
    end_offset: int = 0                    # byte after the last complete line
    metrics: dict[tuple[str, int], tuple[float | None, float | None]] = field(default_factory=dict)
    cells: dict[tuple[str, int], tuple[float | None, float | None]] = field(default_factory=dict)
    artifacts: dict[str, tuple[str, str | None, int | None, float | None]] = field(default_factory=dict)
    status: StatusUpdate | None = None
    progress: tuple[int | None, int | None, str | None, float | None] | None = None
    grid_axes: str | None = None           # JSON of the last `grid` event
    events: int = 0
    skipped: int = 0

    # One handler per event type; each raises BadEvent for a line it cannot use.
    def _metric(self, ev: dict, t: float | None) -> None:
        key, step, value = ev.get("key"), ev.get("step"), ev.get("value")
        # Fast path for the line every training step writes; anything unusual goes the careful way.
        if type(key) is str and key and type(step) is int and -_INT64 <= step < _INT64 \
                and type(value) is float and value == value:
            self.metrics[(key, step)] = (value, t)
            return
        key = _str(ev, "key")
        self.metrics[(key, _int(ev, "step"))] = (_nan_to_none(_float(ev, "value", required=False)), t)

    def _progress(self, ev: dict, t: float | None) -> None:
        self.progress = (_int(ev, "done"), _int(ev, "total", required=False),
                         _str(ev, "stage", required=False), t)

    def _image(self, ev: dict, t: float | None) -> None:
        self.artifacts[_str(ev, "path")] = (ArtifactKind.IMAGE, _str(ev, "key"), _int(ev, "step", required=False), t)

    def _artifact(self, ev: dict, t: float | None) -> None:
        kind = _str(ev, "kind")
        if kind not in _ARTIFACT_KINDS:
            raise BadEvent(f"artifact kind {kind!r} is not one of {', '.join(_ARTIFACT_KINDS)}")
        key = _str(ev, "key", required=False)
        self.artifacts[_str(ev, "path")] = (kind, key, _int(ev, "step", required=False), t)

    def _grid(self, ev: dict, t: float | None) -> None:
        timesteps, layers = ev.get("timesteps"), ev.get("layers")
        if not isinstance(timesteps, list) or not isinstance(layers, list):
            raise BadEvent("fields 'timesteps' and 'layers' must be lists")
        timesteps = [_int({"t": v}, "t") for v in timesteps]
        labels = ev.get("labels") if isinstance(ev.get("labels"), dict) else {}
        self.grid_axes = json.dumps({"timesteps": timesteps, "layers": [str(v) for v in layers],
                                     "labels": {str(k): str(v) for k, v in labels.items()}})

    def _grid_cell(self, ev: dict, t: float | None) -> None:
        accuracy = _nan_to_none(_float(ev, "accuracy", required=False))
        self.cells[(_str(ev, "layer"), _int(ev, "timestep"))] = (accuracy, t)

    def _status(self, ev: dict, t: float | None) -> None:
        status = ev.get("status")
        if status not in STATUSES:
            raise BadEvent(f"status {status!r} is not one of {', '.join(STATUSES)}")
        old = self.status
        update = StatusUpdate(status, error=_str(ev, "error", required=False),
                              pid=_int(ev, "pid", required=False),
                              host=_str(ev, "host", required=False), device=_str(ev, "device", required=False),
                              first_started=old.first_started if old else None,
                              changes=(old.changes if old else 0) + 1)
        if old is not None:          # pid/host/device persist until a status names new ones
            update.pid = update.pid if update.pid is not None else old.pid
            update.host = update.host or old.host
            update.device = update.device or old.device
        if status == RunStatus.RUNNING and update.first_started is None:
            update.first_started = t
        if status in FINAL_STATUSES:
            update.finished = t
        self.status = update

    HANDLERS = {
        EventType.METRIC: _metric, EventType.PROGRESS: _progress, EventType.IMAGE: _image,
        EventType.ARTIFACT: _artifact, EventType.GRID: _grid, EventType.GRID_CELL: _grid_cell,
        EventType.STATUS: _status,
    }

    def feed(self, lines: list[bytes], events_path: str) -> None:
        """Parse complete lines (ddae_core.rundir.read_new_lines's, read from start_offset)."""
        pos = self.start_offset
        handlers = self.HANDLERS
        raw_decode = _DECODER.raw_decode   # json.loads less its per-call encoding and whitespace checks
        warned = events = 0
        for line in lines:
            line_offset, pos = pos, pos + len(line) + 1
            try:
                text = line.decode("utf-8", "replace")
                try:
                    ev, stop = raw_decode(text)
                except ValueError:
                    if not text.strip():
                        continue           # a blank line
                    ev, stop = json.loads(text), len(text)
                if stop != len(text) and not text[stop:].isspace():
                    raise json.JSONDecodeError("Extra data", text, stop)
                if type(ev) is not dict:
                    raise BadEvent("the line is not a JSON object")
                handler = handlers.get(ev.get("type"))
                if handler is None:
                    if not isinstance(ev.get("type"), str):
                        raise BadEvent("field 'type' is missing")
                    events += 1            # a type from a newer writer: skipped silently
                    continue
                t = ev.get("time")
                if type(t) is not float and (type(t) is not int):
                    t = None
                handler(self, ev, t)
                events += 1
            except (ValueError, TypeError, AttributeError) as exc:   # BadEvent and JSONDecodeError are ValueErrors
                self.skipped += 1
                warned += 1
                if warned <= MAX_WARNINGS_PER_PASS:
                    reason = "it is not valid JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
                    log.warning("Skipping the line at byte %d of %s (run %s): %s.",
                                line_offset, events_path, self.run, reason)
        self.events += events
        if warned > MAX_WARNINGS_PER_PASS:
            log.warning("Skipped %d more bad lines of %s (run %s).", warned - MAX_WARNINGS_PER_PASS,
                        events_path, self.run)

