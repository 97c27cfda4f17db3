"""The main window: a workspace, its scheduler on a thread, one refresh timer, and the views as tabs.

Each view comes from its folder (app/launch, app/queue, app/runs, app/run, app/compare, app/classify).
Image files dropped anywhere on the window go to Classify.
"""

from __future__ import annotations

import gc
import logging
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import QApplication, QCheckBox, QMainWindow, QMessageBox, QTabWidget

from db import Changes, Store
from ddae_core.engine.errors import UserError
from ddae_core.engine.importers import looks_like_model
from ddae_core.rundir import MODEL_KINDS, RunStatus, read_spec

from . import workspace as workspaces
from .classify.feed import ClassifyFeed
from .classify.view import ClassifyView
from .compare.feed import CompareFeed
from .compare.view import CompareView
from .eta import RemainingTime, clock
from .first_run import DemoBanner, DemoController
from .launch.feed import Launcher
from .launch.import_model import ImportDialog
from .launch.view import LaunchView
from .live import LiveHub
from .queue.feed import QueueFeed
from .queue.view import QueueView
from .run.feed import RunFeed
from .run.panels import GridPanel
from .run.view import RunView
from .runs.feed import RunsPager
from .runs.view import RunsView
from .scheduler_thread import SCHEDULING, SchedulerThread
from .widgets import export
from .widgets.common import careful_question
from .widgets.elided import ElidedLabel

log = logging.getLogger(__name__)

PARENT_KINDS = MODEL_KINDS
FINISHED = {RunStatus.DONE: "finished", RunStatus.FAILED: "failed", RunStatus.CANCELLED: "was cancelled",
            RunStatus.INTERRUPTED: "was interrupted"}
QUIT_NOTICE_KEY = "window/tell_jobs_continue"
TAB_TITLES = ("Launch", "Queue", "Runs", "Run", "Compare", "Classify")      # Ctrl+1 ... Ctrl+6
_heap_settled = False
_collector = None


def collect_in_gui_thread() -> None:
    """Run Python's cyclic garbage collector only on the GUI thread, from a timer.

    The scheduler and store-reader threads allocate as they work, and an automatic collection runs
    in whichever thread crosses the threshold. Collecting a closed window's widgets there deletes
    Qt objects off the GUI thread, which deadlocks or crashes Qt. Once per process, before a
    window starts its threads; the timer (pyqtgraph's) collects by the usual thresholds.
    """
    global _collector
    if _collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _collector = GarbageCollector(interval=0.5)


def settle_heap() -> None:
    """Move everything allocated at start (Qt, torch, pyqtgraph: ~300k objects) out of the cyclic GC.

    Otherwise a full collection walks them all, 100-200 ms on a slow CPU, stalling the window at
    random while plots update. Done once per process, by the program that owns it (main.py, the
    benchmark), not by the window: tests share their process and may rely on collection.
    """
    global _heap_settled
    if not _heap_settled:
        _heap_settled = True
        gc.collect()
        gc.freeze()


class MainWindow(QMainWindow):
    """One workspace at a time; open_workspace() switches (jobs keep running either way)."""

    workspace_opened = Signal(str)

    def __init__(self, workspace: Path | None = None, *, run_scheduler: bool = True, cpu_slots: int | None = None):
        super().__init__()
        collect_in_gui_thread()
        self.setWindowTitle("DDAE Studio")
        self.resize(1400, 900)
        self._fit_screen()
        self.setAcceptDrops(True)
        self.run_scheduler = run_scheduler
        self.cpu_slots = cpu_slots
        self.store: Store | None = None
        self.hub: LiveHub | None = None
        self.scheduler: SchedulerThread | None = None
        self.demo: DemoController | None = None
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)
        self._statuses: dict[str, str] = {}     # run -> status last seen, to notice a job finishing
        self._parents_shown: list[tuple] = []     # (id, name, status) of the parent runs last sent (reader thread)
        self._asked_on_close = False
        self.scheduler_label = ElidedLabel()     # "held by HOST pid N since ..." never widens the window
        self.statusBar().addPermanentWidget(self.scheduler_label)
        self._build_menus()
        geometry = workspaces.settings().value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
            self._fit_screen()      # saved on a larger screen, or with a window that had grown past it
        if workspace is not None:
            self.open_workspace(workspace)

    def _fit_screen(self, *_) -> None:
        """Keep the window within its screen's available area: no larger (its maximum), and on it."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        self.setMaximumSize(area.size())
        frame = self.geometry()
        if not self.isMaximized() and not self.isFullScreen() and not area.contains(frame):
            frame.setSize(frame.size().boundedTo(area.size()))
            frame.moveLeft(min(max(frame.left(), area.left()), area.right() + 1 - frame.width()))
            frame.moveTop(min(max(frame.top(), area.top()), area.bottom() + 1 - frame.height()))
            self.setGeometry(frame)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        handle = self.windowHandle()
        if handle is not None and not getattr(self, "_follows_screen", False):
            self._follows_screen = True
            handle.screenChanged.connect(self._fit_screen)      # moved to another monitor
        self._fit_screen()

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_action = QAction("&Open or create workspace…", self)
        open_action.setShortcut(QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self._ask_workspace)
        file_menu.addAction(open_action)
        self.recent_menu = file_menu.addMenu("Recent workspaces")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addAction(self._import_action())
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.quit)
        file_menu.addAction(quit_action)
        view_menu = self.menuBar().addMenu("&View")
        self.tab_actions = []
        for number, title in enumerate(TAB_TITLES, start=1):
            action = view_menu.addAction(title, lambda n=number - 1: self.tabs.setCurrentIndex(n))
            action.setShortcut(QKeySequence(f"Ctrl+{number}"))
            self.tab_actions.append(action)
        run_menu = self.menuBar().addMenu("&Run")
        run_menu.addAction("Run the &demo", self.start_demo)
        settings_menu = self.menuBar().addMenu("&Settings")
        settings_menu.addAction("&Cluster profiles…", self.edit_cluster_profiles)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("About DDAE Studio", self._about)

    def edit_cluster_profiles(self) -> None:
        """The workspace's Slurm cluster profiles (cluster.yaml), which every launch form offers."""
        if self.store is None:
            return
        from .launch.cluster_settings import ClusterProfilesDialog

        ClusterProfilesDialog(self.store.workspace, self).exec()
        launch = getattr(self, "launch_view", None)
        for form in getattr(launch, "forms", {}).values():
            form.refresh_clusters()

    # Workspaces.
    def open_workspace(self, path: Path) -> bool:
        """Close the current workspace (leaving its jobs running) and open `path`; False with a message if not."""
        try:
            store = workspaces.open_store(Path(path))
        except workspaces.WorkspaceError as exc:
            QMessageBox.warning(self, "Workspace", str(exc))
            return False
        self._close_workspace()
        self.store = store
        workspaces.remember(store.workspace)
        export.default_folder = store.workspace / "exports"     # where exports go until the user picks a folder
        self.setWindowTitle(f"DDAE Studio — {store.workspace}")
        self.hub = LiveHub(store, parent=self)
        self._build_views(store, self.hub)
        self.hub.changed.connect(self._on_changes)
        self.hub.second.connect(self._on_second)
        self.hub.problem.connect(lambda text: self.statusBar().showMessage(text, 8000))
        if self.run_scheduler:
            slots = self.cpu_slots or int(workspaces.settings().value("scheduler/cpu_slots", 1))
            self.scheduler = SchedulerThread(store.workspace, store, cpu_slots=slots, parent=self)
            self.scheduler.state_changed.connect(lambda mode, text: self.scheduler_label.setText(text))
            self.scheduler.problem.connect(lambda text: self.statusBar().showMessage(text, 8000))
            self.scheduler.slots_changed.connect(self.queue_view.set_slots)
            self.scheduler.ticked.connect(self.queue_view.set_tick)
            self.scheduler.ticked.connect(self.run_view.set_tick)
            self.scheduler.start()
        else:
            self.scheduler_label.setText("Scheduler off in this window.")
        self.hub.start()
        self.demo.check()
        self.workspace_opened.emit(str(store.workspace))
        return True

    def _build_views(self, store: Store, hub: LiveHub) -> None:
        self._parents_shown = []        # another workspace: its parent runs are sent on their first change
        self.launcher = Launcher(store, on_queued=self._queued)
        self.launch_view = LaunchView(self.launcher)
        queue_feed = QueueFeed(store)
        remaining = RemainingTime()         # one time-left estimate for Queue and the Run header
        self.queue_view = QueueView(queue_feed, remaining=remaining)
        self.runs_view = RunsView(RunsPager(store), hub)
        self.run_view = RunView(partial(RunFeed, store), hub, remaining=remaining)
        # The heavier reads after a change run on the hub's reader thread; widgets change on this one.
        hub.watch("queue", lambda changes: queue_feed.rows(), self.queue_view.set_rows)
        hub.watch("parents", self._read_parents, self.launch_view.set_parent_runs)
        self.compare_view = CompareView(CompareFeed(store), hub)
        self.classify_view = ClassifyView(ClassifyFeed(store), hub)
        views = (self.launch_view, self.queue_view, self.runs_view, self.run_view, self.compare_view,
                 self.classify_view)
        for number, (view, title) in enumerate(zip(views, TAB_TITLES), start=1):
            self.tabs.addTab(view, title)
            self.tabs.setTabToolTip(number - 1, f"{title} (Ctrl+{number})")
        self.launch_view.queued.connect(self.show_run)
        self.queue_view.open_run.connect(self.show_run)
        self.runs_view.open_run.connect(self.show_run)
        self.runs_view.compare.connect(self.compare_runs)
        self.runs_view.evaluate.connect(self.evaluate)
        self.run_view.open_run.connect(self.show_run)
        self.run_view.evaluate.connect(self.evaluate)
        self.runs_view.launch_like.connect(self.launch_like)
        self.run_view.launch_like.connect(self.launch_like)
        self.run_view.evaluate_checkpoint.connect(self.evaluate)
        self.run_view.classify_head.connect(self.classify_head)

        self.demo = DemoController(store, self.launcher, parent=self)
        self.demo.probe_queued.connect(self._demo_probe_queued)
        self.banner = DemoBanner()
        self.banner.start_demo.connect(self.start_demo)
        self.runs_view.banner_slot.addWidget(self.banner)

        self.runs_view.reload()
        self.queue_view.refresh()
        self._refresh_parents()
        empty = store.count_runs() == 0
        self.banner.setVisible(empty)
        running = store.list_runs(status=RunStatus.RUNNING, limit=1)
        if running:
            self.show_run(running[0].id, switch=False)
        self.tabs.setCurrentWidget(self.runs_view)

    def _close_workspace(self) -> None:
        """Stop polling and scheduling (workers keep running), drop the views, close the index."""
        if getattr(self, "runs_view", None) is not None and self.store is not None:
            self.runs_view.empty_trash()        # runs deleted in the undo period go now, while the index is open
        if self.hub is not None:
            self.hub.stop()
            self.hub.deleteLater()
            self.hub = None
        if self.scheduler is not None:
            if not self.scheduler.stop():
                log.warning("The scheduler thread did not stop in time.")
            self.scheduler.deleteLater()
            self.scheduler = None
        if getattr(self, "classify_view", None) is not None:
            self.classify_view.shutdown()       # its inference thread stops before the Store closes
        while self.tabs.count():
            view = self.tabs.widget(0)
            self.tabs.removeTab(0)
            view.deleteLater()
        if self.demo is not None:
            self.demo.deleteLater()
            self.demo = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def _ask_workspace(self) -> None:
        path = workspaces.ask_workspace(self, self.store.workspace if self.store else None)
        if path is not None:
            self.open_workspace(path)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in workspaces.recent_workspaces():
            self.recent_menu.addAction(str(path), lambda p=path: self.open_workspace(p))

    # Updates.
    def _read_parents(self, changes: Changes):
        """On the reader thread: the runs evaluations can start from, when what the forms show of them changed.

        A training run changes twice a second (its progress); refilling every form's parent list (up to
        500 entries each) on the GUI thread for that would be wasted work.
        """
        if changes.full or any(r.kind in PARENT_KINDS for r in changes.runs):
            runs = self.store.list_runs(kind=PARENT_KINDS, limit=500)
            shown = [(r.id, r.name, r.status) for r in runs]
            if changes.full or shown != self._parents_shown:
                self._parents_shown = shown
                return runs
        return None

    def _on_changes(self, changes: Changes) -> None:
        self._notice_finished(changes)
        self.runs_view.apply(changes)
        if self.banner.isVisible() and (changes.runs or changes.full):
            self.banner.setVisible(self.store.count_runs() == 0)
        if self.demo is not None and any(r.status == RunStatus.DONE for r in changes.runs) and self.demo.pending():
            self.demo.check()

    def _notice_finished(self, changes: Changes) -> None:
        """Say in the status bar (and flash the window) when a job this window saw running ends."""
        ended = []
        for r in changes.runs:
            before = self._statuses.get(r.id)
            if r.status in FINISHED and (before == RunStatus.RUNNING
                                         or (before == RunStatus.QUEUED and r.status != RunStatus.CANCELLED)):
                ended.append(r)
            self._statuses[r.id] = r.status
        if not ended:
            return
        r = ended[-1]
        took = f" after {clock(r.finished - r.started)}" if r.finished and r.started else ""
        text = f"{r.kind} “{r.name}” {FINISHED[r.status]}{took}."
        if len(ended) > 1:
            text += f" ({len(ended) - 1} other job{'s' if len(ended) > 2 else ''} ended too; see Queue.)"
        self.statusBar().showMessage(text, 15000)
        QApplication.alert(self)

    def _on_second(self) -> None:
        self.runs_view.tick()
        self.queue_view.tick()
        self.run_view.tick()

    def _refresh_parents(self) -> None:
        if self.store is not None:
            self.launch_view.set_parent_runs(self.store.list_runs(kind=PARENT_KINDS, limit=500))

    def _queued(self, run_id: str) -> None:
        if self.scheduler is not None:
            self.scheduler.poke()
        if self.hub is not None:
            self.hub.poll()     # the new run shows at once, without waiting for the reader

    # Navigation.
    def show_run(self, run_id: str, switch: bool = True) -> None:
        if self.run_view.show_run(run_id) and switch:
            self.tabs.setCurrentWidget(self.run_view)

    def compare_runs(self, run_ids: list[str]) -> None:
        self.compare_view.set_runs(run_ids)
        self.tabs.setCurrentWidget(self.compare_view)

    def evaluate(self, kind: str, parent_run: str, checkpoint: int | None = None) -> None:
        self._refresh_parents()
        self.launch_view.show_kind(kind, parent_run, checkpoint)
        self.tabs.setCurrentWidget(self.launch_view)

    def classify_head(self, probe_run: str, layer: str, timestep: int) -> None:
        """Classify with a probe's head: a grid cell's layer at its noise level ('' and -1: its best cell's)."""
        self.tabs.setCurrentWidget(self.classify_view)
        if self.hub is not None:
            self.hub.poll()         # a Classify never shown yet lists its runs now
        self.classify_view.show_head(probe_run, layer or None, None if timestep < 0 else timestep)

    def launch_like(self, run_id: str) -> None:
        """The Launch form of the run's kind, filled from its spec (Launch like this)."""
        if self.store is None:
            return
        try:
            spec = read_spec(self.store.run_dir(run_id))
            self._refresh_parents()
            self.launch_view.launch_like(spec)
        except (UserError, KeyError) as exc:
            self.statusBar().showMessage(f"Run {run_id} cannot be launched again from a form: {exc}", 15000)
            return
        self.tabs.setCurrentWidget(self.launch_view)

    # The demo.
    def demo_question(self, earlier: list) -> QMessageBox:
        """Asked before a second demo: it names the first one's runs, and No is the default."""
        names = ", ".join(f"“{r.name}” ({r.status})" for r in earlier[:3]) + (", …" if len(earlier) > 3 else "")
        return careful_question(self, "Run the demo again", f"This workspace already has the demo's runs: {names}. "
                                                            "Queue another demo beside them?")

    def start_demo(self) -> None:
        if self.demo is None:
            return
        earlier = self.demo.earlier_runs()
        if earlier and self.demo_question(earlier).exec() != QMessageBox.StandardButton.Yes:
            return
        try:
            run_id = self.demo.start()
        except Exception as exc:  # noqa: BLE001 - say it in one sentence
            QMessageBox.warning(self, "Demo", f"The demo could not be queued: {exc}")
            return
        self.banner.hide()
        if self.demo.classify_run is not None:
            self.classify_view.prefer_run(self.demo.classify_run)
        if self.demo.example_run is not None:
            self.statusBar().showMessage("Demo queued: a probe grid of the bundled model first, then a short "
                                        "training run of your own.", 10000)
            self.show_run(self.demo.example_run)
            self.run_view.show_tab(GridPanel)
        else:
            self.statusBar().showMessage("Demo queued: training for a few minutes, then a probe grid.", 10000)
            self.show_run(run_id)

    def _demo_probe_queued(self, train_id: str, probe_id: str) -> None:
        self.statusBar().showMessage(f"Demo: the probe grid {probe_id} is queued; its cells fill in the heatmap.",
                                     10000)
        if self.run_view.run_id == train_id:
            self.run_view.show_run(train_id)        # its children changed: the grid comes from the probe
            self.run_view.show_tab(GridPanel)

    def _import_action(self) -> QAction:
        action = QAction("&Import a model…", self)
        action.triggered.connect(lambda: self.import_model())
        return action

    def import_model(self, source: str | None = None) -> ImportDialog | None:
        """The import dialog, filled with `source` (a dropped checkpoint); shown, and returned for tests."""
        if self.store is None:
            return None
        dialog = ImportDialog(self.launcher, source, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    # Drops: a checkpoint file or a diffusers folder goes to the import dialog, images to Classify.
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            return
        if len(paths) == 1 and looks_like_model(Path(paths[0])):
            self.import_model(paths[0])
            event.acceptProposedAction()
            return
        self.tabs.setCurrentWidget(self.classify_view)
        if self.hub is not None:
            self.hub.poll()         # a Classify never shown yet lists its runs now, before the files arrive
        self.classify_view.load_files(paths)
        event.acceptProposedAction()

    # Closing.
    def quit_notice(self) -> str | None:
        """What quitting leaves behind, in a few sentences: running jobs continue; queued ones wait."""
        if self.store is None:
            return None
        running = self.store.list_runs(status=RunStatus.RUNNING, limit=50)
        queued = self.store.queued_jobs() if self.scheduler is not None and self.scheduler.mode == SCHEDULING \
            else []
        if not running and not queued:
            return None
        parts = []
        if running:
            names = ", ".join(f"“{r.name}”" for r in running[:3]) + (", …" if len(running) > 3 else "")
            parts.append(f"{len(running)} job{'s keep' if len(running) > 1 else ' keeps'} running after you quit "
                         f"({names}); reopen the app or use `ddae queue list` to follow "
                         f"{'them' if len(running) > 1 else 'it'}.")
        if queued:
            parts.append(f"{len(queued)} queued job{'s wait' if len(queued) > 1 else ' waits'} until a scheduler "
                         "runs again: this app, or `ddae queue serve`.")
        return " ".join(parts)

    def quit_box(self, text: str) -> QMessageBox:
        """The notice shown on quitting while jobs run (OK quits, Cancel stays; it can be turned off)."""
        box = QMessageBox(QMessageBox.Icon.Information, "Quit DDAE Studio", text,
                          QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel, self)
        box.setDefaultButton(QMessageBox.StandardButton.Ok)
        box.setEscapeButton(QMessageBox.StandardButton.Cancel)
        # Held here too: asking the box for its checkbox after Escape crashes PySide6 (a freed wrapper).
        box.do_not_tell = QCheckBox("Do not tell me again")
        box.setCheckBox(box.do_not_tell)
        return box

    def quit(self) -> bool:
        """File > Quit: say what keeps running, then close; False if the user chose to stay."""
        if not self._confirm_quit():
            return False
        self._asked_on_close = True
        return self.close()

    def _confirm_quit(self) -> bool:
        settings = workspaces.settings()
        text = self.quit_notice() if str(settings.value(QUIT_NOTICE_KEY, "true")).lower() != "false" else None
        if text is None:
            return True
        box = self.quit_box(text)
        answer = box.exec()         # OK quits; Cancel, Escape and the box's close button stay
        check = getattr(box, "do_not_tell", None)
        if check is not None and check.isChecked():
            settings.setValue(QUIT_NOTICE_KEY, "false")
        if isinstance(box, QMessageBox):
            box.deleteLater()
        return int(getattr(answer, "value", answer)) == QMessageBox.StandardButton.Ok.value

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop the timer and the scheduler thread; running jobs keep running and show again on reopening."""
        # The window's close button asks as File > Quit does (a close from code, e.g. a test, does not),
        # but after this event: a dialog run inside a close event lets Qt take the window as closed and
        # quit the app when the dialog closes, whatever was answered.
        if event.spontaneous() and not self._asked_on_close:
            event.ignore()
            QTimer.singleShot(0, self.quit)
            return
        workspaces.settings().setValue("window/geometry", self.saveGeometry())
        self._close_workspace()
        super().closeEvent(event)

    def _about(self) -> None:
        QMessageBox.about(self, "DDAE Studio", "DDAE Studio: an experiment manager for denoising diffusion "
                          "autoencoders (Xiang et al., ICCV 2023). Jobs run as worker processes and keep running "
                          "when this window closes.")
