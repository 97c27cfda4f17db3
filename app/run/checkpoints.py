"""Per-checkpoint sample quality and probe accuracy of a train run, from its evaluations (no Qt).

FID comes from the run's `fid` children (their `fid` points, step = the checkpoint's step); accuracy
from its `probe` children (their `probe/accuracy`, or the best cell so far while the grid runs, at the
checkpoint they probed: spec parent.checkpoint, else the step of their metrics, else grid.json).
Where several jobs measured one checkpoint, sweep jobs win over hand-launched ones and the newest wins
among equals, as `ddae sweep --show` reads them. CheckpointReader re-reads a child only when it changed,
so it can run after every change of a long sweep; gather_checkpoints is the one-shot form.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from db import RunSummary, Store
from ddae_core.engine.evaluation.fid_label import FID_KEY, NONSTANDARD_KEY, fid_name
from ddae_core.rundir import GRID, SAMPLES_KEY, JobKind, RunStatus, list_checkpoints

PROBE_KEY = "probe/accuracy"
LOSS_KEY = "loss/train"
STEP_KEYS = (PROBE_KEY, "probe/baseline/pixels", "probe/baseline/random_init")    # metrics at the probed step
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
EMPTY_TEXT = ("No FID yet: `ddae sweep --run {run}` (or Evaluate checkpoints while training, in Launch) queues "
              "FID and probe jobs per checkpoint.")


@dataclass(frozen=True)
class CheckpointPoint:
    """What is known of one checkpoint: its FID (lower is better) and probe accuracy (0..1)."""

    step: int
    fid: float | None = None
    accuracy: float | None = None
    cell: str | None = None             # where the accuracy was measured, e.g. "out_6 at t=11"
    accuracy_final: bool = True         # False while the probe still runs (its best cell so far)
    fid_run: str | None = None
    probe_run: str | None = None
    samples: Path | None = None         # the grid of the first samples the FID job scored here
    fid_standard: bool = True           # False: not pytorch-fid's Inception weights at 2048 dims (fid_label.py)


@dataclass(frozen=True)
class CheckpointResults:
    """A train run's checkpoints with FID or accuracy, by step, and its evaluation jobs still to finish."""

    run_id: str
    points: tuple[CheckpointPoint, ...] = ()
    waiting: int = 0                    # fid/probe children queued or running
    failed: int = 0                     # ... that failed

    def with_fid(self) -> list[CheckpointPoint]:
        return [p for p in self.points if p.fid is not None]

    @property
    def fid_standard(self) -> bool:
        """True unless one of its FIDs was computed with other Inception weights or dims than the standard's."""
        return all(p.fid_standard for p in self.with_fid())

    def with_accuracy(self) -> list[CheckpointPoint]:
        return [p for p in self.points if p.accuracy is not None]

    def paired(self) -> list[CheckpointPoint]:
        """The checkpoints with both numbers: the points of the accuracy-against-FID scatter."""
        return [p for p in self.points if p.fid is not None and p.accuracy is not None]

    def best_probe(self) -> CheckpointPoint | None:
        """The checkpoint with the highest accuracy (the earlier one on a tie)."""
        points = self.with_accuracy()
        return max(points, key=lambda p: (p.accuracy, -p.step)) if points else None

    def best_fid(self) -> CheckpointPoint | None:
        """The checkpoint with the lowest FID (the earlier one on a tie)."""
        points = self.with_fid()
        return min(points, key=lambda p: (p.fid, p.step)) if points else None

    def status_text(self, run: str | None = None) -> str:
        """One sentence: the checkpoints measured and jobs waiting, or how to get some (`ddae sweep --run run`)."""
        if not self.points and not self.waiting:
            text = EMPTY_TEXT.format(run=run or self.run_id)
            return text + (f" {self.failed} such job(s) failed; their logs say why." if self.failed else "")
        text = (f"{len(self.points)} checkpoint(s): {len(self.with_fid())} with FID, "
                f"{len(self.with_accuracy())} with probe accuracy, {len(self.paired())} with both.")
        if self.waiting:
            text += f" {self.waiting} evaluation job(s) queued or running; points appear as they finish."
        if self.failed:
            text += f" {self.failed} failed."
        return text


def best_table(results: CheckpointResults, steps_per_epoch: float | None = None) -> tuple[list[str], list[tuple]]:
    """The paper's two rows: the best-probe checkpoint and the best-FID checkpoint, with both numbers.

    Columns: checkpoint, step, epoch (None when unknown), FID, accuracy (0..1), probe cell.
    """
    headers = ["checkpoint", "step", "epoch", fid_name(results.fid_standard), "probe accuracy", "probe cell"]
    rows = []
    for label, point in (("best linear probe", results.best_probe()), ("best FID", results.best_fid())):
        if point is None:
            rows.append((label, None, None, None, None, None))
            continue
        epoch = point.step / steps_per_epoch if steps_per_epoch else None
        rows.append((label, point.step, epoch, point.fid, point.accuracy, point.cell))
    return headers, rows


@dataclass
class _Child:
    """A child run's contribution, kept until its summary row changes."""

    seen: RunSummary
    sweep: bool = False
    fid: dict[int, float] = field(default_factory=dict)                  # step -> FID
    nonstandard: set[int] = field(default_factory=set)                   # steps whose FID is non-standard
    samples: dict[int, Path] = field(default_factory=dict)               # step -> its sample grid
    accuracy: tuple[int, float, str | None, bool] | None = None          # step, accuracy, cell, final
    fid_shape: tuple | None = None


class CheckpointReader:
    """Incremental reads of one train run's FID and probe children (see the module docstring)."""

    def __init__(self, store: Store, run_id: str):
        self.store = store
        self.run_id = run_id
        self._children: dict[str, _Child] = {}
        self._specs: dict[str, tuple[int | None, bool]] = {}     # child -> (checkpoint step or None, sweep)

    def read(self, children: list[RunSummary] | None = None) -> CheckpointResults:
        """The results now; `children` (store.children of the run, oldest first) when the caller has them."""
        if children is None:
            children = self.store.children(self.run_id)
        evaluations, read = [], {}
        for c in children:
            if c.kind not in (JobKind.FID, JobKind.PROBE):
                continue
            try:
                read[c.id] = self._child(c)
            except LookupError:         # deleted since the list was read: it has nothing to show any more
                continue
            evaluations.append(c)
        self._children = read
        fids: dict[int, tuple[bool, float, str, Path | None, bool]] = {}
        accuracies: dict[int, tuple[bool, tuple, str]] = {}
        for c in evaluations:               # oldest first: a newer job of the same rank replaces an older one
            child = self._children[c.id]
            for step, value in child.fid.items():
                if step not in fids or child.sweep >= fids[step][0]:
                    fids[step] = (child.sweep, value, c.id, child.samples.get(step), step not in child.nonstandard)
            if child.accuracy is not None:
                step = child.accuracy[0]
                if step not in accuracies or child.sweep >= accuracies[step][0]:
                    accuracies[step] = (child.sweep, child.accuracy, c.id)
        points = []
        for step in sorted(set(fids) | set(accuracies)):
            fid = fids.get(step)
            acc = accuracies.get(step)
            points.append(CheckpointPoint(
                step, fid=fid[1] if fid else None, accuracy=acc[1][1] if acc else None,
                cell=acc[1][2] if acc else None, accuracy_final=acc[1][3] if acc else True,
                fid_run=fid[2] if fid else None, probe_run=acc[2] if acc else None,
                samples=fid[3] if fid else None, fid_standard=fid[4] if fid else True))
        return CheckpointResults(self.run_id, tuple(points),
                                 waiting=sum(c.status in ACTIVE for c in evaluations),
                                 failed=sum(c.status == RunStatus.FAILED for c in evaluations))

    def _spec_of(self, child_id: str) -> tuple[int | None, bool]:
        if child_id not in self._specs:
            record = self.store.get_run(child_id)
            checkpoint = record.parent_checkpoint
            step = int(checkpoint) if checkpoint is not None and str(checkpoint).isdigit() else None
            self._specs[child_id] = (step, bool((record.spec.get("options") or {}).get("sweep")))
        return self._specs[child_id]

    def _child(self, summary: RunSummary) -> _Child:
        old = self._children.get(summary.id)
        step, sweep = self._spec_of(summary.id)
        if summary.kind == JobKind.FID:
            # Its row does not change with every point, its `fid` summary does: one small query.
            summaries = {s.key: (s.count, s.latest_step, s.latest_value) for s in self.store.summaries(summary.id)}
            shape = (summaries[FID_KEY], summaries.get(NONSTANDARD_KEY)) if FID_KEY in summaries else None
            if old is not None and old.fid_shape == shape:
                old.seen = summary
                return old
            child = _Child(summary, sweep, fid_shape=shape)
            if shape is not None:
                h = self.store.metric_history(summary.id, FID_KEY)
                child.fid = {int(s): float(v) for s, v in zip(h.steps, h.values) if math.isfinite(v)}
                if shape[1] is not None:
                    child.nonstandard = {int(s) for s in self.store.metric_history(summary.id, NONSTANDARD_KEY).steps}
                base = self.store.run_dir(summary.id)
                child.samples = {int(s): base / path for s, path in self.store.images(summary.id, SAMPLES_KEY)
                                 if s is not None}
            return child
        if old is not None and (old.seen.status, old.seen.best_accuracy) == (summary.status, summary.best_accuracy) \
                and old.accuracy is not None:
            return old
        child = _Child(summary, sweep)
        child.accuracy = self._probe_accuracy(summary, step)
        return child

    def _probe_accuracy(self, summary: RunSummary, step: int | None) -> tuple[int, float, str | None, bool] | None:
        """(checkpoint step, accuracy, best cell, final) of a probe, or None before it has a cell."""
        summaries = {s.key: s for s in self.store.summaries(summary.id)}
        cells = [c for c in self.store.grid_cells(summary.id) if c.accuracy is not None and math.isfinite(c.accuracy)]
        final = summaries.get(PROBE_KEY)
        if final is not None and final.latest_value is not None:
            accuracy, done = final.latest_value, True
        elif cells:
            accuracy, done = max(c.accuracy for c in cells), False
        else:
            return None
        if step is None:
            step = next((summaries[k].latest_step for k in STEP_KEYS if k in summaries), None)
        if step is None:
            step = self._grid_json_step(summary.id)
        if step is None:
            return None         # a `latest` probe that has not said which checkpoint it read yet
        best = max(cells, key=lambda c: c.accuracy) if cells else None
        where = f"{best.layer} at t={best.timestep}" if best is not None else None
        notes = [f"best of {len(cells)} cells"] * (len(cells) > 1) + ["so far"] * (not done)
        if where and notes:
            where = f"{where} ({', '.join(notes)})"
        return int(step), float(accuracy), where, done

    def _grid_json_step(self, child_id: str) -> int | None:
        try:
            step = json.loads((self.store.run_dir(child_id) / GRID).read_text()).get("checkpoint_step")
        except (OSError, ValueError, AttributeError):
            return None
        return int(step) if isinstance(step, int) else None


def gather_checkpoints(store: Store, run_id: str) -> CheckpointResults:
    """Every checkpoint of a train run with FID or probe accuracy, read once (see CheckpointReader)."""
    return CheckpointReader(store, run_id).read()


# The checkpoint list: every checkpoint a train run saved, with what is known of it.
@dataclass(frozen=True)
class CheckpointRow:
    """One saved checkpoint: when, its loss then, its probe accuracy and FID where measured, its size."""

    step: int
    path: Path
    saved: float | None = None          # Unix seconds (the file's time)
    size_bytes: int | None = None
    loss: float | None = None           # the last logged loss/train at or before the step
    accuracy: float | None = None       # 0..1, its probe's (best cell where a grid)
    cell: str | None = None
    fid: float | None = None
    probe_run: str | None = None        # the probe whose heads Classify can use
    best: tuple[str, ...] = ()          # "loss", "probe", "FID": what it is the best checkpoint by


BEST_BY = ("loss", "probe", "FID")


def checkpoint_files(run_dir: Path) -> list[tuple[int, Path, float | None, int | None]]:
    """(step, path, time, size) of each complete checkpoint, by step; a file that went meanwhile has no time."""
    out = []
    for step, path in list_checkpoints(run_dir):
        try:
            stat = path.stat()
            size = stat.st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            out.append((step, path, stat.st_mtime, size))
        except OSError:
            out.append((step, path, None, None))
    return out


def checkpoint_rows(files: list[tuple[int, Path, float | None, int | None]], results: CheckpointResults | None,
                    loss_steps, loss_values) -> list[CheckpointRow]:
    """The rows of the checkpoint list, with the best checkpoint by loss, probe accuracy and FID marked.

    loss_steps, loss_values: the run's loss/train curve (ascending steps).
    """
    points = {p.step: p for p in results.points} if results is not None else {}
    rows = []
    for step, path, saved, size in files:
        index = bisect.bisect_right(list(loss_steps), step) - 1
        loss = float(loss_values[index]) if index >= 0 and math.isfinite(loss_values[index]) else None
        point = points.get(step)
        rows.append(CheckpointRow(step, path, saved, size, loss,
                                  accuracy=point.accuracy if point else None, cell=point.cell if point else None,
                                  fid=point.fid if point else None, probe_run=point.probe_run if point else None))
    best = {
        "loss": min((r for r in rows if r.loss is not None), key=lambda r: (r.loss, r.step), default=None),
        "probe": max((r for r in rows if r.accuracy is not None), key=lambda r: (r.accuracy, -r.step), default=None),
        "FID": min((r for r in rows if r.fid is not None), key=lambda r: (r.fid, r.step), default=None),
    }
    return [replace(r, best=tuple(name for name in BEST_BY if best[name] is r)) for r in rows]
