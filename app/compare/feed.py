"""Compare's feed: what the Compare view shows, from the Store's public reads as plain records (no Qt).

Read on the live hub's reader thread (a Selection per set of compared runs), never on the GUI thread.

A selected run may be a train run or one of its evaluations; each panel takes its data from the
run that holds it: loss and samples from the train run, the probe grid from the run itself or its
probe child the Run view shows (grid_of: a running one, else the best), accuracy-vs-noise from the run
itself or its newest noisy-classifier child. A segmentation run's grid is shown as a probe grid whose cells are
mIoU; a similarity run brings its layer x layer CKA result (similarity.json) and its summary metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qs

from db import Changes, GridAxes, GridCell, History, RunRecord, RunSummary, Store
from ddae_core.engine.evaluation.certainty import read_grid
from ddae_core.engine.evaluation.grid_axes import GridPlacement, placement_of, spec_config
from ddae_core.engine.evaluation.protocols import BASELINE_KEYS, BASELINE_LABELS, protocol_of
from ddae_core.engine.evaluation.similarity import read_similarity
from ddae_core.rundir import ACTIVE_STATUSES, MODEL_KINDS, SAMPLES_KEY, JobKind, RunStatus

from ..run.checkpoints import CheckpointReader, CheckpointResults
from ..run.feed import grid_of

TRAIN_KINDS = MODEL_KINDS
SPEC_IGNORED = ("id", "name", "created")    # always differ between runs; the columns already name them
GRID_KINDS = (JobKind.PROBE, JobKind.SEGMENTATION)      # runs that are a grid themselves
SUMMARY_PREFIXES = ("sample/", "similarity/")           # summary metrics the table shows as columns


@dataclass(frozen=True)
class RunBundle:
    run: RunRecord
    train_id: str | None                    # the run whose loss curve and sample grids are shown
    probe_id: str | None
    noisy_id: str | None
    axes: GridAxes | None = None
    cells: tuple[GridCell, ...] = ()
    samples: tuple[tuple[int, Path], ...] = ()
    sample_metrics: dict[str, float | None] = field(default_factory=dict)
    steps_per_epoch: float | None = None
    baselines: dict[str, float] = field(default_factory=dict)   # the grid's: "raw pixels"/"random init" -> acc
    protocol: str | None = None                                 # the grid's protocol
    label: str | None = None                                    # the name shown, when the name is not unique
    train_name: str | None = None                               # the name of the run behind train_id
    grid_file: dict | None = None                               # the grid's grid.json, once saved
    placement: GridPlacement | None = None                      # the grid on log-SNR x relative depth
    measure: str = "accuracy"                                   # what the grid's cells are: accuracy or mIoU
    similarity: dict | None = None                              # a similarity run's similarity.json, once written

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def name(self) -> str:
        return self.label or self.run.name

    def source_ids(self) -> set[str]:
        return {i for i in (self.run.id, self.train_id, self.probe_id, self.noisy_id) if i}

    def finished_cells(self) -> dict[tuple[int, str], float]:
        return {(c.timestep, c.layer): c.accuracy for c in self.cells
                if c.accuracy is not None and math.isfinite(c.accuracy)}

    def best_cell(self) -> tuple[int, str, float] | None:
        cells = self.finished_cells()
        if not cells:
            return None
        (t, layer), acc = max(cells.items(), key=lambda kv: kv[1])
        return t, layer, acc


def distinct_names(bundles: list[RunBundle]) -> list[RunBundle]:
    """The bundles, those whose run names repeat labelled 'name [run id]' so every panel tells them apart."""
    counts: dict[str, int] = {}
    for b in bundles:
        counts[b.run.name] = counts.get(b.run.name, 0) + 1
    return [replace(b, label=f"{b.run.name} [{b.id}]") if counts[b.run.name] > 1 else b for b in bundles]


def _newest_child(store: Store, run_id: str, kind: str) -> str | None:
    children = [c for c in store.children(run_id) if c.kind == kind]
    # Prefer the newest finished one; a running one only when nothing has finished.
    done = [c for c in children if c.status == RunStatus.DONE]
    pick = (done or children)
    return pick[-1].id if pick else None


def steps_per_epoch(run: RunRecord) -> float | None:
    """Training steps per epoch when the spec says it: trained by epochs, or a dataset sized in its spec."""
    options = run.spec.get("options") or {}
    if options.get("steps") is None and options.get("epochs") and run.progress_total \
            and run.progress_stage == "train":
        return run.progress_total / float(options["epochs"])
    batch = options.get("batch_size")
    data = run.data or ""
    if batch and "?" in data:
        n_train = parse_qs(data.split("?", 1)[1]).get("n_train")
        limit = options.get("data_limit")
        if n_train:
            n = int(n_train[0]) if not limit else min(int(n_train[0]), int(limit))
            return float(math.ceil(n / int(batch)))
    return None


def gather(store: Store, run_id: str) -> RunBundle:
    """Everything but the curves (read incrementally by the view) for one selected run."""
    run = store.get_run(run_id)
    if run.kind in TRAIN_KINDS:
        train_id = run.id
        probes = [c for c in store.children(run.id) if c.kind == JobKind.PROBE]
        probe_id = grid_of(probes, run.best_grid).id if probes else None
        noisy_id = _newest_child(store, run.id, JobKind.NOISY_CLASSIFIER)
    else:
        train_id = run.parent_run
        probe_id = run.id if run.kind in GRID_KINDS else None
        noisy_id = run.id if run.kind == JobKind.NOISY_CLASSIFIER else None
    train = store.get_run(train_id) if train_id and train_id != run.id else run
    axes = store.grid_axes(probe_id) if probe_id else None
    cells = tuple(store.grid_cells(probe_id)) if probe_id else ()
    samples: tuple[tuple[int, Path], ...] = ()
    if train_id:
        base = store.run_dir(train_id)
        samples = tuple((step, base / path) for step, path in store.images(train_id, SAMPLES_KEY) if step is not None)
    metrics: dict[str, float | None] = {}
    sources = [i for i in (train_id, run.id) if i] + (
        [c.id for c in store.children(train_id) if c.kind == JobKind.SAMPLE] if train_id else [])
    for source in dict.fromkeys(sources):
        for summary in store.summaries(source):
            if summary.key.startswith(SUMMARY_PREFIXES):
                metrics[summary.key] = summary.latest_value
    baselines, protocol = grid_context(store, probe_id) if probe_id else ({}, None)
    if run.kind == JobKind.SEGMENTATION:
        protocol = None                         # per-pixel heads: none of the probe protocols
    grid_file = read_grid(store.run_dir(probe_id)) if probe_id else None
    placement = None
    if probe_id:
        probe = run if probe_id == run.id else store.get_run(probe_id)
        placement = placement_of(grid_file, spec_config(probe.spec, train.spec if train_id else None))
    similarity = read_similarity(store.run_dir(run.id)) if run.kind == JobKind.SIMILARITY and \
        run.status not in ACTIVE_STATUSES else None
    return RunBundle(run, train_id, probe_id, noisy_id, axes, cells, samples, metrics,
                     steps_per_epoch(train) if train.kind in TRAIN_KINDS else None, baselines, protocol,
                     train_name=train.name if train_id else None, grid_file=grid_file, placement=placement,
                     measure="mIoU" if run.kind == JobKind.SEGMENTATION else "accuracy", similarity=similarity)


def grid_context(store: Store, probe_id: str) -> tuple[dict[str, float], str]:
    """A probe grid's baselines (label -> accuracy, those measured so far) and its protocol."""
    labels = {key: BASELINE_LABELS[name] for name, key in BASELINE_KEYS.items()}
    baselines = {labels[s.key]: s.latest_value for s in store.summaries(probe_id)
                 if s.key in labels and s.latest_value is not None}
    return baselines, protocol_of(store.get_run(probe_id).spec.get("options") or {})


def flatten(spec: dict, prefix: str = "") -> dict[str, object]:
    """Nested spec -> {"config.network.n_channels": 128, ...}; lists stay whole values."""
    flat: dict[str, object] = {}
    for key, value in spec.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


class _Missing:
    """A spec key one run lacks: shown as a dash wherever it is printed."""

    def __repr__(self) -> str:
        return "—"


MISSING = _Missing()


def spec_differences(specs: dict[str, dict]) -> list[tuple[str, dict[str, object]]]:
    """(key, {run id: value or MISSING}) for every flattened spec key whose value differs between runs."""
    flat = {run_id: flatten(spec) for run_id, spec in specs.items()}
    keys = sorted(set().union(*(f.keys() for f in flat.values()))) if flat else []
    out = []
    for key in keys:
        if key in SPEC_IGNORED:
            continue
        values = {run_id: f.get(key, MISSING) for run_id, f in flat.items()}
        distinct = {repr(v) if v is not MISSING else "<missing>" for v in values.values()}
        if len(distinct) > 1:
            out.append((key, values))
    return out


def grid_difference(a: RunBundle, b: RunBundle) -> tuple[list[int], list[str], dict[int, str],
                                                          dict[tuple[int, str], float]]:
    """Axes over both grids and B - A where both have the cell (timesteps sorted; A's layer order first)."""
    a_cells, b_cells = a.finished_cells(), b.finished_cells()
    a_axes = (list(a.axes.timesteps), list(a.axes.layers)) if a.axes else ([], [])
    b_axes = (list(b.axes.timesteps), list(b.axes.layers)) if b.axes else ([], [])
    timesteps = sorted(set(a_axes[0]) | set(b_axes[0]) | {t for t, _ in a_cells} | {t for t, _ in b_cells})
    layers = list(dict.fromkeys(a_axes[1] + b_axes[1] + [lay for _, lay in a_cells] + [lay for _, lay in b_cells]))
    labels: dict[int, str] = {}
    for bundle in (b, a):
        if bundle.axes:
            labels.update({int(k): v for k, v in bundle.axes.labels.items()})
    diff = {key: b_cells[key] - a_cells[key] for key in a_cells.keys() & b_cells.keys()}
    return timesteps, layers, labels, diff


# What the view shows, read on the live hub's reader thread.
LOSS_KEY = "loss/train"


@dataclass
class CompareRead:
    """One read of the compared runs: what changed for each panel, as plain records."""

    bundles: list[RunBundle]
    missing: list[str]                                  # selected runs that no longer exist
    losses: dict[str, History]                          # train run -> loss points after the last read
    noise: dict[str, tuple[History, History]]           # run -> (noisy/accuracy, noisy/sigma) histories
    checkpoints: dict[str, CheckpointResults]           # train run -> its checkpoints' FID and probe accuracy
    rebuild: bool                                       # a probe or noisy child appeared: new panels


class CompareFeed:
    """Compare's door to the workspace: the runs to pick from, and a Selection per set of compared runs."""

    def __init__(self, store: Store):
        self.store = store

    @property
    def workspace(self) -> Path:
        return self.store.workspace

    def runs(self, limit: int = 1000) -> list[RunSummary]:
        """The runs the picker lists (newest first)."""
        return self.store.list_runs(limit=limit)

    def select(self, run_ids: list[str]) -> Selection:
        return Selection(self.store, run_ids)


class Selection:
    """Incremental reads of one set of compared runs (each choice of runs gets a new one, as RunFeed per run)."""

    def __init__(self, store: Store, run_ids: list[str]):
        self.store = store
        self.run_ids = list(run_ids)
        self._loss_last: dict[str, int] = {}                     # train run -> last loss step read
        self._checkpoints: dict[str, CheckpointReader] = {}
        self._watched: set[str] = set(run_ids)
        self._structure: list[tuple] | None = None

    def read(self, changes: Changes | None) -> CompareRead | None:
        """Everything when `changes` is None, else only if they touch a compared run or its sources."""
        if not self.run_ids:
            return None
        if changes is not None and not (changes.full or any(d in self._watched for d in changes.deleted) or any(
                r.id in self._watched or r.parent_run in self._watched for r in changes.runs)):
            return None
        bundles, missing = [], []
        for run_id in self.run_ids:
            try:
                bundles.append(gather(self.store, run_id))
            except LookupError:
                missing.append(run_id)
        bundles = distinct_names(bundles)
        self._watched = set(self.run_ids).union(*(b.source_ids() for b in bundles))
        structure = [(b.probe_id, b.noisy_id, b.train_id, b.similarity is not None) for b in bundles]
        rebuild, self._structure = structure != self._structure, structure
        return CompareRead(bundles, missing, self._losses(bundles), self._noise(bundles),
                           self._checkpoint_results(bundles), rebuild)

    def _losses(self, bundles: list[RunBundle]) -> dict[str, History]:
        out = {}
        for train_id in dict.fromkeys(b.train_id for b in bundles if b.train_id):
            history = self.store.metric_history(train_id, LOSS_KEY, since_step=self._loss_last.get(train_id))
            if history.steps:
                self._loss_last[train_id] = history.steps[-1]
            out[train_id] = history
        return out

    def _noise(self, bundles: list[RunBundle]) -> dict[str, tuple[History, History]]:
        out = {}
        for b in bundles:
            if b.noisy_id:
                accuracy = self.store.metric_history(b.noisy_id, "noisy/accuracy")
                if accuracy.steps:
                    out[b.id] = (accuracy, self.store.metric_history(b.noisy_id, "noisy/sigma"))
        return out

    def _checkpoint_results(self, bundles: list[RunBundle]) -> dict[str, CheckpointResults]:
        shown = list(dict.fromkeys(b.train_id for b in bundles if b.train_id))
        self._checkpoints = {t: self._checkpoints.get(t) or CheckpointReader(self.store, t) for t in shown}
        out = {}
        for train_id in shown:
            try:
                out[train_id] = self._checkpoints[train_id].read()
            except LookupError:
                continue
        return out
