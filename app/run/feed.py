"""What the Run view reads from the Store for one run, incrementally.

poll() compares the run's metric summaries (one small query) with the last step it already has
per key and reads only the points after it (metric_history since_step). A key whose count went
down or whose points were rewritten (a resumed run replaying steps) is read whole once more.
Grid cells, images and children are re-read only when the run (or a child) changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from db import Changes, GridAxes, GridCell, History, RunRecord, RunSummary, Store
from ddae_core.engine.evaluation.certainty import read_grid, read_knn
from ddae_core.engine.evaluation.grid_axes import GridPlacement, placement_of, spec_config
from ddae_core.engine.evaluation.protocols import BASELINE_KEYS, protocol_of
from ddae_core.engine.evaluation.segmentation import read_segmentation
from ddae_core.engine.evaluation.similarity import read_similarity
from ddae_core.rundir import ACTIVE_STATUSES, MODEL_KINDS, SAMPLES_KEY, JobKind, RunStatus
from ddae_core.rundir.errors import UserError

from .checkpoints import LOSS_KEY, CheckpointReader, CheckpointResults, CheckpointRow, checkpoint_files, checkpoint_rows
from .movie import GridMovie, MovieReader

# The kinds whose results are a file the view reads whole once the run has ended.
RESULT_FILES = {JobKind.SIMILARITY: read_similarity, JobKind.SEGMENTATION: read_segmentation}

__all__ = ["Changes", "History", "RunFeed", "RunRecord", "RunSummary", "RunUpdate", "grid_of"]   # the views take these


def grid_of(probes: list[RunSummary], best_grid: str | None) -> RunSummary:
    """The probe grid a train run shows: one still filling in (the newest), else its headline grid.

    best_grid is the train run's own (db/queries.py headline_of, the rule of the runs table), so the two never
    show different grids for one run; a running grid comes first so that it is seen filling in.
    """
    running = [p for p in probes if p.status == RunStatus.RUNNING]
    if running:
        return running[-1]                  # children come oldest first
    return next((p for p in probes if p.id == best_grid), probes[-1])


@dataclass
class RunUpdate:
    """New data for the Run view; None (or empty) where nothing changed."""

    record: RunRecord
    appended: dict[str, History] = field(default_factory=dict)     # points after the last step shown
    replaced: dict[str, History] = field(default_factory=dict)     # whole curves to show instead
    axes: GridAxes | None = None
    cells: list[GridCell] | None = None
    grid_source: str | None = None          # the run whose grid is shown (this one, or grid_of its probes)
    grid_protocol: str | None = None        # that grid's protocol (fast | official | standardized)
    baselines: dict[str, float] | None = None   # its baselines: "pixels" / "random_init" -> accuracy
    grid_work: str | None = None            # what that grid's run is doing now ('' when not running)
    grid_file: dict | None = None           # that grid's grid.json, once saved (test images, selection, ...)
    grid_placement: GridPlacement | None = None     # where that grid sits on log-SNR x relative depth
    knn: dict | None = None                 # that grid's k-NN cells (knn_grid.json), once its features are cached
    images: list[tuple[int, Path]] | None = None
    children: list[RunSummary] | None = None
    checkpoints: CheckpointResults | None = None   # a trained model's FID and probe accuracy per checkpoint
    checkpoint_rows: list[CheckpointRow] | None = None   # its saved checkpoints, with those results and the loss
    movie: GridMovie | None = None                  # a trained model's probe grids by checkpoint step
    result_file: dict | None = None                 # a similarity or segmentation run's result, once written
    segmentation: dict | None = None                # a trained model's newest finished segmentation.json (+ "run")
    readme_row: str | None = None       # its best-probe vs best-FID pair as the official README's row ('': not yet)
    first: bool = False


class RunFeed:
    """Incremental reads of one run (and, for a trained model, the probe grid grid_of picks)."""

    def __init__(self, store: Store, run_id: str):
        self.store = store
        self.run_id = run_id
        self.run_dir = store.run_dir(run_id)
        self._last: dict[str, tuple[int, int]] = {}     # key -> (last step, count) already handed out
        self._summary: dict[str, tuple] = {}            # key -> the summary it had then
        self._pid: int | None = None
        self._images: list[tuple[int, str]] = []
        self._cells: list[GridCell] | None = None
        self._axes: GridAxes | None = None
        self._grid_source: str | None = None
        self._baselines: dict[str, float] | None = None
        self._grid_work: str | None = None
        self._grid_file: dict | None = None
        self._placement: GridPlacement | None = None
        self._knn: dict | None = None
        self._children: list[RunSummary] | None = None
        self._checkpoint_reader = CheckpointReader(store, run_id)
        self._checkpoints: CheckpointResults | None = None
        self._checkpoint_files: tuple | None = None
        self._movie_reader = MovieReader(store)
        self._movie: GridMovie | None = None
        self._result_file: dict | None = None
        self._segmentation: dict | None = None
        self._first = True

    def poll(self, children_changed: bool = True) -> RunUpdate:
        """Everything new since the last poll (everything on the first)."""
        record = self.store.get_run(self.run_id)
        if record.pid is not None and self._pid is not None and record.pid != self._pid:
            self._last.clear()          # a resumed run replays steps after its checkpoint: read it all again
        self._pid = record.pid or self._pid
        update = RunUpdate(record=record, first=self._first)
        self._first = False
        self._poll_metrics(update)
        images = self.store.images(self.run_id, SAMPLES_KEY)
        if images != self._images:
            self._images = images
            update.images = [(step, self.run_dir / path) for step, path in images if step is not None]
        if children_changed or self._children is None:
            children = self.store.children(self.run_id) if record.kind in MODEL_KINDS else []
            if children != self._children:
                self._children = children
                update.children = children
                self._poll_segmentation(update)
        if record.kind in MODEL_KINDS and (children_changed or self._checkpoints is None):
            checkpoints = self._checkpoint_reader.read(self._children or [])
            if checkpoints != self._checkpoints:
                self._checkpoints = update.checkpoints = checkpoints
                update.readme_row = self._readme_row()
            movie = self._movie_reader.read(self._checkpoints, self._children or [])
            if movie != self._movie:
                self._movie = update.movie = movie
        if record.kind in RESULT_FILES and self._result_file is None and record.status not in ACTIVE_STATUSES:
            self._result_file = update.result_file = RESULT_FILES[record.kind](self.run_dir)
        if record.kind in MODEL_KINDS:
            self._poll_checkpoint_rows(update)
        self._poll_grid(update)
        return update

    def _poll_segmentation(self, update: RunUpdate) -> None:
        """The newest finished segmentation child's grid, shown beside the probe grid's accuracy."""
        done = [c for c in self._children or [] if c.kind == JobKind.SEGMENTATION and c.status == RunStatus.DONE]
        if not done or (self._segmentation or {}).get("run_id") == done[-1].id:
            return
        result = read_segmentation(self.store.run_dir(done[-1].id))
        if result is not None:
            self._segmentation = update.segmentation = {**result, "run_id": done[-1].id,
                                                        "run": done[-1].name or done[-1].id}

    def _readme_row(self) -> str:
        """The official README's table row of the best-probe vs best-FID checkpoints; '' until both are measured."""
        try:
            return self.store.readme_row(self.run_id)
        except UserError:
            return ""

    def _poll_checkpoint_rows(self, update: RunUpdate) -> None:
        """The checkpoint list again when a checkpoint was saved or removed, or a result came in."""
        files = checkpoint_files(self.run_dir)
        # The loss of a checkpoint just saved may be ingested after it: read again until it is.
        loss_step = min(self._last.get(LOSS_KEY, (0, 0))[0], files[-1][0] if files else 0)
        if update.checkpoints is None and (files, loss_step) == self._checkpoint_files:
            return
        self._checkpoint_files = (files, loss_step)
        loss = self.store.metric_history(self.run_id, LOSS_KEY)
        update.checkpoint_rows = checkpoint_rows(files, self._checkpoints, loss.steps, loss.values)

    def _poll_metrics(self, update: RunUpdate) -> None:
        for summary in self.store.summaries(self.run_id):
            key = summary.key
            known = self._last.get(key)
            shape = (summary.latest_value, summary.best_step, summary.best_value, summary.min, summary.max)
            rewritten = known is not None and (summary.latest_step, summary.count) == known \
                and shape != self._summary.get(key)
            self._summary[key] = shape
            if known is not None and (summary.latest_step, summary.count) == known and not rewritten:
                continue
            if known is None or rewritten or summary.latest_step < known[0] or summary.count < known[1]:
                history = self.store.metric_history(self.run_id, key)
                update.replaced[key] = history
                total = len(history.steps)
            else:
                history = self.store.metric_history(self.run_id, key, since_step=known[0])
                expected = known[1] + len(history.steps)
                if expected != summary.count:
                    # Steps before the last one changed too: read the whole curve again.
                    history = self.store.metric_history(self.run_id, key)
                    update.replaced[key] = history
                    total = len(history.steps)
                else:
                    update.appended[key] = history
                    total = expected
            if history.steps:
                self._last[key] = (history.steps[-1], total)

    @staticmethod
    def _work_of(run: RunRecord | RunSummary | None) -> str:
        """`extract t=51, 62%`: a running grid's stage, since a row's cells come only when the row is done."""
        if run is None or run.status != RunStatus.RUNNING or not run.progress_stage:
            return ""
        fraction = run.progress_fraction
        return run.progress_stage + (f", {fraction:.0%}" if fraction is not None else "")

    def _poll_grid(self, update: RunUpdate) -> None:
        source = self.run_id
        if update.record.kind not in (JobKind.PROBE, JobKind.SEGMENTATION):     # a grid of its own
            probes = [c for c in (self._children or []) if c.kind == JobKind.PROBE]
            if not probes:
                return
            source = grid_of(probes, update.record.best_grid).id
        if source != self._grid_source:
            self._grid_source, self._axes, self._cells, self._baselines = source, None, None, None
            self._grid_work, self._grid_file, self._placement, self._knn = None, None, None, None
        axes = self.store.grid_axes(source)
        cells = self.store.grid_cells(source)
        keys = {key: name for name, key in BASELINE_KEYS.items()}
        baselines = {keys[s.key]: s.latest_value for s in self.store.summaries(source)
                     if s.key in keys and s.latest_value is not None}
        if baselines != self._baselines:
            self._baselines = baselines
            update.baselines = baselines
        if axes != self._axes:
            self._axes = axes
            update.axes = axes
            update.cells = cells
        if cells != self._cells:
            self._cells = cells
            update.cells = cells
        work = self._work_of(update.record if source == self.run_id else
                             next((c for c in self._children or [] if c.id == source), None))
        if work != self._grid_work:
            self._grid_work = update.grid_work = work
        if self._grid_file is None and not work:        # grid.json is written once, when the grid ends
            self._grid_file = update.grid_file = read_grid(self.store.run_dir(source))
        # knn_grid.json: a preview's first (preview.py), then the full one once a fast grid's features are cached.
        if self._knn is None or self._knn.get("preview"):
            knn = read_knn(self.store.run_dir(source))
            if knn != self._knn:
                self._knn = update.knn = knn
        if update.axes is not None or update.cells is not None or update.baselines is not None \
                or update.grid_work is not None or update.grid_file is not None or update.knn is not None:
            update.grid_source = source
            spec = update.record.spec if source == self.run_id else self.store.get_run(source).spec
            update.grid_protocol = protocol_of(spec.get("options") or {})
        if self._placement is None or update.grid_file is not None:
            self._placement = update.grid_placement = self._placement_of(update.record, source)

    def _placement_of(self, record: RunRecord, source: str) -> GridPlacement:
        """The grid's placement on the shared axes: from its grid.json, else its own or its parent's spec."""
        run = record if source == record.id else self.store.get_run(source)
        parent = record if run.parent_run == record.id else \
            (self.store.get_run(run.parent_run) if run.parent_run else None)
        return placement_of(self._grid_file, spec_config(run.spec, parent.spec if parent else None))
