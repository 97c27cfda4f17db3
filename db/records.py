"""Plain records the Store returns: frozen dataclasses and named tuples, never ORM rows."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from ddae_core.rundir import (
    FINAL_STATUSES as FINAL_STATUSES,  # re-exported: db's modules import it from here
    ArtifactKind,
    RunStatus,
)

STATUSES = tuple(RunStatus)             # in the order of the schema's check constraint
ARTIFACT_KINDS = tuple(ArtifactKind)    # likewise
SETTING_SECTIONS = ("network", "diffusion", "training", "data", "evaluation")   # the run table's, in order


def higher_is_better(key: str) -> bool:
    """True for accuracies (the key's last path component contains "acc"), else lower is better."""
    return "acc" in key.rsplit("/", 1)[-1].lower()


def _fraction(done: int | None, total: int | None) -> float | None:
    """done / total clamped to [0, 1]; None while either is unknown."""
    if not total or done is None:
        return None
    return min(1.0, max(0.0, done / total))


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as the index knows it; `spec` is a fresh dict parsed from spec.yaml."""

    id: str
    name: str
    kind: str
    status: str
    data: str | None
    spec: dict[str, Any]
    parent_run: str | None          # None also when the parent was deleted; see parent_ref
    parent_ref: str | None          # the parent run id as spec.yaml names it
    parent_checkpoint: str | None
    created: float | None           # Unix seconds
    started: float | None
    finished: float | None
    pid: int | None
    host: str | None
    device: str | None
    error: str | None
    tags: tuple[str, ...]
    notes: str
    device_request: str
    gpus: int
    progress_done: int | None
    progress_total: int | None
    progress_stage: str | None
    progress_time: float | None
    events_offset: int              # bytes of events.jsonl ingested
    # The run's headline, as RunSummary has it: all from the one grid run best_grid (db/queries.py headline_of).
    best_accuracy: float | None = None
    baseline_pixels: float | None = None
    baseline_random: float | None = None
    best_protocol: str | None = None
    best_grid: str | None = None

    @property
    def progress_fraction(self) -> float | None:
        return _fraction(self.progress_done, self.progress_total)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One row of the run table: the run plus summary columns, read without touching histories."""

    id: str
    name: str
    kind: str
    status: str
    data: str | None
    created: float | None
    started: float | None
    finished: float | None
    best_accuracy: float | None     # of best_grid: its reported headline (probe/accuracy), else its max cell
    last_loss: float | None         # latest value of loss/train
    tags: tuple[str, ...]
    notes: str
    error: str | None
    device: str | None
    parent_run: str | None
    progress_done: int | None
    progress_total: int | None
    progress_stage: str | None
    priority: int | None            # None when not queued
    baseline_pixels: float | None = None    # the best grid's raw-pixel baseline (0..1)
    baseline_random: float | None = None    # ... and its random-init baseline
    best_protocol: str | None = None        # ... and its protocol: fast | official | standardized
    best_grid: str | None = None            # ... and its run id (the run itself, or its best probe child)

    @property
    def progress_fraction(self) -> float | None:
        return _fraction(self.progress_done, self.progress_total)

    @property
    def gains(self) -> tuple[float | None, float | None]:
        """How far best_accuracy stands above raw pixels and above random init (None where not measured)."""
        best = self.best_accuracy
        return tuple(None if best is None or b is None else best - b   # type: ignore[return-value]
                     for b in (self.baseline_pixels, self.baseline_random))


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """Latest and best of one metric key; best is the max for accuracies, else the min."""

    run: str
    key: str
    count: int
    latest_step: int
    latest_value: float | None      # None stands for NaN (SQLite stores NaN as NULL)
    latest_time: float | None
    best_step: int | None
    best_value: float | None
    min: float | None
    max: float | None

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.key)


class History(NamedTuple):
    """A full metric curve, sorted by step; unpacks as (steps, values, times).

    array.array buffers (no object per point): np.frombuffer() or list() them as needed.
    """

    steps: array                    # 'q' (int64)
    values: array                   # 'd' (float64); NaN where the point was NaN
    times: array                    # 'd' (Unix seconds); NaN where the event had no time


@dataclass(frozen=True, slots=True)
class GridAxes:
    """Axes of a probe grid: timesteps (noise levels), layers in network order, optional labels."""

    timesteps: tuple[int, ...]
    layers: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)   # str(timestep) -> text (e.g. sigma)


@dataclass(frozen=True, slots=True)
class GridCell:
    layer: str
    timestep: int
    accuracy: float | None          # 0..1
    time: float | None


@dataclass(frozen=True, slots=True)
class Artifact:
    run: str
    kind: str                       # checkpoint | image | figure | file
    key: str | None                 # e.g. "samples" for images
    step: int | None
    path: str                       # relative to the run directory (posix separators)
    time: float | None


@dataclass(frozen=True, slots=True)
class QueueEntry:
    run: str
    name: str
    kind: str
    status: str
    priority: int                   # higher first
    gpus: int                       # 0 = CPU
    device_request: str             # auto | cpu | cuda
    enqueued: float                 # Unix seconds; FIFO within equal priority


@dataclass(frozen=True, slots=True)
class ChangeToken:
    """Opaque position in the database's change history; compare with == to skip a refresh."""

    generation: str                 # new for every database file (a reindex starts a new one)
    version: int


@dataclass(frozen=True, slots=True)
class Changes:
    token: ChangeToken
    runs: tuple[RunSummary, ...]    # runs changed since the old token (all runs when full)
    deleted: tuple[str, ...]        # run ids deleted since the old token
    full: bool                      # True: the old token was from another database; replace everything


@dataclass(frozen=True, slots=True)
class IngestStats:
    runs_registered: int = 0
    runs_read: int = 0
    bytes_read: int = 0
    events: int = 0                 # complete, valid lines of known or unknown type
    metric_points: int = 0
    grid_cells: int = 0
    artifacts: int = 0
    status_changes: int = 0
    skipped_lines: int = 0          # not JSON or missing required fields
    seconds: float = 0.0

    def plus(self, other: IngestStats) -> IngestStats:
        """Both passes' counts together."""
        return IngestStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0
