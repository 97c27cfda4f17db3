"""Run: one run, live while its job runs and the same afterwards.

The header says what the run is and how far it got; tabs hold its results (curves, samples, the
probe heatmap, alignment/uniformity, accuracy vs noise, every other metric, its evaluations);
below them its log and the system strip. Updates arrive from the window's one refresh timer:
apply(changes) reads only what is new for this run (RunFeed) and hands it to the panels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ddae_core.engine.data.specs import parse_spec
from ddae_core.engine.evaluation.protocols import headline_line
from ddae_core.rundir import LOG, MODEL_KINDS, JobKind, RunStatus

from ..eta import RemainingTime, clock, left_text
from ..formats import STATUS_COLORS, when
from ..live import LiveHub
from ..logtail import LogTail
from ..system import SystemStrip
from ..widgets.elided import ElidedLabel
from .checkpoint_list import CheckpointsPanel
from .deferred_panel import DeferredPanel
from .explore_panels import SegmentationPanel, SimilarityPanel
from .feed import Changes, RunFeed, RunRecord, RunUpdate
from .movie_panel import MoviePanel
from .panels import (
    AlignPanel,
    ChildrenPanel,
    GridPanel,
    MetricsPanel,
    Panel,
    SamplesPanel,
    TrainingPanel,
    finetune_panel,
    noisy_panel,
)
from .unified import UnifiedPanel, fid_panel

log = logging.getLogger(__name__)

EVALUATIONS = ((JobKind.PROBE, "Probe grid…"), (JobKind.ALIGN_UNIFORM, "Alignment and uniformity…"),
               (JobKind.NOISY_CLASSIFIER, "Noise-conditional classifier…"), (JobKind.FINETUNE, "Fine-tune…"),
               (JobKind.SAMPLE, "Sample images…"), (JobKind.FID, "FID of checkpoints…"),
               (JobKind.SIMILARITY, "Similarity with another model…"), (JobKind.SEGMENTATION, "Segmentation grid…"))
TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "tiny-imagenet": 100_000}


def steps_per_epoch(spec: dict) -> float | None:
    """Optimizer steps in one epoch of a train run, when its dataset's size is known from the spec."""
    options = spec.get("options") or {}
    batch = options.get("batch_size")
    try:
        parsed = parse_spec(spec.get("data") or "")
    except Exception:  # noqa: BLE001 - an unknown spec just disables x = epoch
        return None
    n = parsed.params.get("n_train") if parsed.kind == "shapes" else TRAIN_SIZES.get(parsed.kind)
    if options.get("data_limit"):
        n = min(n or options["data_limit"], options["data_limit"])
    return n / batch if n and batch else None


def panels_for(record: RunRecord) -> list[Panel | DeferredPanel]:
    """The run's tabs; a trained model's snapshot panels are built when first shown (app.run.deferred_panel)."""
    kind = record.kind
    if kind in MODEL_KINDS:
        per_epoch = steps_per_epoch(record.spec)
        panels: list[Panel | DeferredPanel] = [
            TrainingPanel(per_epoch), DeferredPanel(SamplesPanel, SamplesPanel), DeferredPanel(GridPanel, GridPanel),
            DeferredPanel(UnifiedPanel, lambda: UnifiedPanel(per_epoch)),
            DeferredPanel(CheckpointsPanel, CheckpointsPanel), DeferredPanel(MoviePanel, MoviePanel)]
        if (record.spec.get("options") or {}).get("monitor_layers"):
            panels.append(AlignPanel())         # the label-free monitor writes align/ and uniform/ keys
        panels.append(DeferredPanel(ChildrenPanel, ChildrenPanel))
    elif kind == JobKind.PROBE:
        panels = [GridPanel()]
    elif kind == JobKind.SIMILARITY:
        panels = [SimilarityPanel()]
    elif kind == JobKind.SEGMENTATION:
        panels = [SegmentationPanel()]
    elif kind == JobKind.ALIGN_UNIFORM:
        panels = [AlignPanel()]
    elif kind == JobKind.NOISY_CLASSIFIER:
        panels = [noisy_panel()]
    elif kind == JobKind.FINETUNE:
        panels = [finetune_panel()]
    elif kind == JobKind.SAMPLE:
        panels = [SamplesPanel()]
    elif kind == JobKind.FID:
        panels = [fid_panel(), SamplesPanel()]      # FID per checkpoint, and each checkpoint's samples
    else:
        panels = []
    return [*panels, MetricsPanel()]


class RunHeader(QWidget):
    """Name, status, what ran where, progress and the run's actions."""

    def __init__(self, parent=None, remaining: RemainingTime | None = None):
        super().__init__(parent)
        self.remaining = remaining or RemainingTime()       # shared with the Queue view: one time left
        # Long names and specs elide (the whole text in the tooltip) rather than widening the window.
        self.title = ElidedLabel()
        font = self.title.font()
        font.setPointSize(15)
        font.setWeight(QFont.Weight.DemiBold)
        self.title.setFont(font)
        self.status = QLabel()
        self.details = ElidedLabel()
        self.details.setStyleSheet("color: #555;")
        self.error = QLabel()
        self.error.setStyleSheet("color: #c62828;")
        self.error.setWordWrap(True)
        self.error.setTextFormat(Qt.TextFormat.PlainText)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFixedWidth(300)
        self.progress.setTextVisible(True)
        self.folder_button = QPushButton("Open folder")
        self.like_button = QPushButton("Launch like this")
        self.like_button.setToolTip("Open the Launch form filled from this run's spec, to queue it again or a sweep "
                                    "around it")
        self.evaluate_button = QToolButton()
        self.evaluate_button.setText("Evaluate ▾")
        self.evaluate_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.menu = QMenu(self)
        self.evaluate_button.setMenu(self.menu)
        top = QHBoxLayout()
        top.addWidget(self.title)
        top.addWidget(self.status)
        top.addStretch(1)
        top.addWidget(self.progress)
        top.addWidget(self.evaluate_button)
        top.addWidget(self.like_button)
        top.addWidget(self.folder_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.details)
        layout.addWidget(self.error)

    def show_record(self, r: RunRecord, waiting: str = "") -> None:
        self.title.setText(r.name)
        self.title.setToolTip(f"{r.name}\n{r.id}")
        color = STATUS_COLORS.get(r.status, "#444")
        self.status.setText(f"<span style='color:white; background:{color}; padding:2px 8px;"
                            f" border-radius:6px'>&nbsp;{r.status}&nbsp;</span>")
        self.status.setToolTip(r.error or "")
        parts = [r.kind, r.id]
        if r.data:
            parts.append(f"data {r.data}")
        if r.parent_ref:
            parts.append(f"from {r.parent_ref} @ {r.parent_checkpoint or 'latest'}")
        if r.device:
            parts.append(f"on {r.device}")
        if r.created:
            parts.append(f"created {when(r.created)}")
        if r.started:
            end = r.finished if r.finished and r.status != RunStatus.RUNNING else time.time()
            parts.append(f"ran {clock(end - r.started)}")
        if r.best_accuracy is not None:
            parts.append(headline_line(r.best_accuracy, r.best_protocol, r.baseline_pixels, r.baseline_random))
        self.details.setText("  ·  ".join(parts))
        self.details.setToolTip("\n".join(parts))
        self.error.setText(r.error or "")
        self.error.setVisible(bool(r.error))
        fraction = r.progress_fraction
        # A finished run needs no bar; a stopped one shows how far it got.
        self.progress.setVisible(r.status != RunStatus.DONE and (fraction is not None or r.status == RunStatus.QUEUED))
        if fraction is not None:
            self.progress.setValue(int(fraction * 1000))
            left = left_text(self.time_left(r))
            self.progress.setFormat(f"{r.progress_stage or ''} {r.progress_done}/{r.progress_total}  {fraction:.0%}"
                                    + (f"  ·  {left}" if left else ""))
        elif r.status == RunStatus.QUEUED:
            self.progress.setValue(0)
            self.progress.setFormat(waiting or r.progress_stage or "queued")
        self.evaluate_button.setVisible(r.kind in MODEL_KINDS)
        self.like_button.setVisible(r.kind != "import")        # an import has no launch form


    def time_left(self, r: RunRecord) -> float | None:
        """Seconds left in the running stage, from the estimate the Queue view shows too."""
        if r.status != RunStatus.RUNNING:
            return None
        now = time.time()
        self.remaining.observe(r.id, r.progress_stage, r.progress_done, r.progress_total, now)
        return self.remaining.seconds_left(r.id, now)


class RunView(QWidget):
    """Shows one run (show_run) and keeps it live (apply, tick)."""

    open_run = Signal(str)
    evaluate = Signal(str, str)     # job kind, parent run id
    launch_like = Signal(str)       # run id: the Launch form filled from its spec
    evaluate_checkpoint = Signal(str, str, int)     # job kind, parent run id, checkpoint step
    classify_head = Signal(str, str, int)           # a probe run, its head's layer ('' its best cell), timestep (-1)

    def __init__(self, feed_for: Callable[[str], RunFeed] | None, hub: LiveHub | None = None, parent=None,
                 remaining: RemainingTime | None = None):
        """feed_for: a run id -> its RunFeed (functools.partial(RunFeed, store)): the view never holds the Store."""
        super().__init__(parent)
        self.feed_for = feed_for
        self.hub = hub
        self.watch_name = f"run-view-{id(self)}"
        self.feed: RunFeed | None = None
        self.record: RunRecord | None = None
        self.panels: list[Panel | DeferredPanel] = []

        self.header = RunHeader(remaining=remaining)
        self.header.folder_button.clicked.connect(self._open_folder)
        self.header.like_button.clicked.connect(lambda: self.record and self.launch_like.emit(self.record.id))
        for kind, text in EVALUATIONS:
            self.header.menu.addAction(text, lambda k=kind: self.record and self.evaluate.emit(k, self.record.id))
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        # A run that has not started has nothing to plot: it says why it waits instead of empty axes.
        self.waiting = QLabel()
        self.waiting.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.waiting.setWordWrap(True)
        self.waiting.setStyleSheet("color: #555; font-size: 12pt; padding: 24px;")
        self.pages = QStackedWidget()
        self.pages.addWidget(self.tabs)
        self.pages.addWidget(self.waiting)
        self._reasons: dict[str, str] = {}      # queued run -> why the scheduler holds it back
        self.log = LogTail()
        self.system = SystemStrip()
        self.placeholder = QLabel("Choose a run in Runs or Queue (double-click), or launch one.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color: #777; font-size: 12pt;")

        log_box = QWidget()
        log_layout = QVBoxLayout(log_box)
        log_layout.setContentsMargins(6, 0, 6, 0)
        log_title = QLabel("Log")
        log_title.setStyleSheet("font-weight: 600;")
        log_layout.addWidget(log_title)
        log_layout.addWidget(self.log)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.pages)
        self.splitter.addWidget(log_box)
        self.splitter.setStretchFactor(0, 4)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([600, 150])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 4)
        layout.addWidget(self.header)
        layout.addWidget(self.placeholder, 1)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.system)
        self._set_empty(True)

    def _set_empty(self, empty: bool) -> None:
        self.placeholder.setVisible(empty)
        self.splitter.setVisible(not empty)
        self.header.setVisible(not empty)

    # Choosing the run.
    @property
    def run_id(self) -> str | None:
        return self.record.id if self.record else None

    def show_run(self, run_id: str) -> bool:
        """Build the panels for the run and load everything it has so far; False if it is gone."""
        if self.feed_for is None:
            return False
        feed = self.feed_for(run_id)
        if self.hub is not None:
            self.hub.unwatch(self.watch_name)     # the old run's late updates are dropped from here on
        try:
            update = feed.poll()
        except LookupError:
            return False
        self.feed, self.record = feed, update.record
        self.tabs.clear()
        for panel in self.panels:
            panel.deleteLater()
        self.panels = panels_for(update.record)
        for panel in self.panels:
            self.tabs.addTab(panel, panel.title)
            if isinstance(panel, DeferredPanel):
                panel.build_me = self._build
            else:
                self._connect(panel)
        self.log.follow(feed.run_dir / LOG)
        self._set_empty(False)
        self._apply(update)
        if self.hub is not None:
            self.hub.watch(self.watch_name, lambda changes: self.read(feed, changes), self._apply_read)
        return True

    # Keeping it live.
    @staticmethod
    def read(feed: RunFeed, changes: Changes) -> RunUpdate | str | None:
        """On the reader thread: the run's new data if it (or a child) changed, 'deleted', or None."""
        if feed.run_id in changes.deleted:
            return "deleted"
        mine = any(r.id == feed.run_id for r in changes.runs)
        children = any(r.parent_run == feed.run_id for r in changes.runs)
        if not (mine or children or changes.full):
            return None
        try:
            return feed.poll(children_changed=children or changes.full)
        except LookupError:
            return "deleted"

    def apply(self, changes: Changes) -> None:
        """Read and show what changed now, on this thread (without a hub, or to force a refresh)."""
        if self.feed is not None:
            self._apply_read(self.read(self.feed, changes))

    def _apply_read(self, result: RunUpdate | str | None) -> None:
        if result == "deleted" and self.record is not None:
            self.header.details.setText(f"Run {self.record.id} was deleted.")
            if self.hub is not None:
                self.hub.unwatch(self.watch_name)
            self.feed = None
        elif isinstance(result, RunUpdate):
            self._apply(result)

    def set_tick(self, report) -> None:
        """The scheduler's TickReport: why each queued job waits (the shown run's reason goes on screen)."""
        reasons = dict(getattr(report, "waiting", ()) or ())
        if reasons == self._reasons:
            return
        self._reasons = reasons
        if self.record is not None and self.record.status == RunStatus.QUEUED:
            self._show_waiting(self.record)

    def waiting_reason(self) -> str:
        """Why the shown run waits: the scheduler's words, its queue stage, or that no scheduler has said."""
        r = self.record
        if r is None or r.status != RunStatus.QUEUED:
            return ""
        return self._reasons.get(r.id) or r.progress_stage or "waiting for the scheduler"

    def _show_waiting(self, r: RunRecord) -> None:
        reason = self.waiting_reason()
        self.header.show_record(r, reason)
        fresh = r.status == RunStatus.QUEUED and r.started is None
        if fresh:
            self.waiting.setText(f"Queued, {reason}.\nIts curves, samples and grids appear here once it starts.")
        self.pages.setCurrentWidget(self.waiting if fresh else self.tabs)

    def is_waiting(self) -> bool:
        """True while the run has not started and the view shows why instead of its (empty) plots."""
        return self.pages.currentWidget() is self.waiting

    @property
    def export_context(self) -> str:
        """Exported files of this view start with the run's name."""
        return self.record.name if self.record is not None else ""

    def _apply(self, update: RunUpdate) -> None:
        self.record = update.record
        self._show_waiting(update.record)
        for panel in self.panels:
            try:
                panel.apply(update)
            except Exception:
                log.exception("Panel %s failed to update", panel.title)
        self.system.follow(update.record.pid if update.record.status == RunStatus.RUNNING else None, update.record.host)

    def tick(self) -> None:
        """Once a second: the log tail, the system strip, the running clock."""
        if self.record is None:
            return
        self.log.poll()
        if self.isVisible():
            self.system.refresh()
        if self.record.status == RunStatus.RUNNING:
            self.header.show_record(self.record)

    def panel(self, cls: type[Panel]) -> Panel | None:
        """The run's panel of that class (built now if its tab has not been shown yet), or None."""
        for p in self.panels:
            if isinstance(p, cls):
                return p
            if isinstance(p, DeferredPanel) and issubclass(p.cls, cls):
                return self._build(p)
        return None

    def _connect(self, panel: Panel) -> None:
        """A panel's requests to open something elsewhere, passed on as this view's signals."""
        if isinstance(panel, ChildrenPanel):
            panel.open_run.connect(self.open_run)
        elif isinstance(panel, GridPanel):
            panel.classify_cell.connect(self.classify_head)
        elif isinstance(panel, CheckpointsPanel):
            panel.evaluate_checkpoint.connect(self.evaluate_checkpoint)
            panel.classify_head.connect(self.classify_head)

    def _build(self, deferred: DeferredPanel) -> Panel | None:
        """Build a deferred panel and put it in its tab's place (the tab stays current if it was)."""
        if deferred not in self.panels:
            return None                 # a late request for a run no longer shown
        panel = deferred.build()
        self.panels[self.panels.index(deferred)] = panel
        self._connect(panel)
        index, current = self.tabs.indexOf(deferred), self.tabs.currentWidget() is deferred
        held = [p for p in self.panels if isinstance(p, DeferredPanel)]
        for p in held:
            p.holding = True            # removing the current tab shows its neighbour for a moment
        try:
            self.tabs.removeTab(index)
            self.tabs.insertTab(index, panel, panel.title)
            if current:
                self.tabs.setCurrentIndex(index)
        finally:
            for p in held:
                p.holding = False
        deferred.deleteLater()
        return panel

    def show_tab(self, cls: type[Panel]) -> None:
        panel = self.panel(cls)
        if panel is not None:
            self.tabs.setCurrentWidget(panel)

    def _open_folder(self) -> None:
        if self.feed is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.feed.run_dir)))
