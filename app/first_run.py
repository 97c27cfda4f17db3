"""First run: on an empty workspace, a one-click demo that makes every view come alive on a CPU.

As `ddae demo` does, the demo imports the bundled example (tiny-ddpm trained for hours on
builtin:shapes) and queues a probe grid of it first, so the heatmap that fills in shows what a
diffusion model's layers know, against its raw-pixel and random-init baselines. Then it queues a
short `tiny-ddpm` run of the user's own (loss curve, samples) and, once that run is done, a probe
grid on its last checkpoint. The bundled CIFAR-10 model is imported beside them, and the Classify
view opens on it, so a dropped photo gets a meaningful answer. The probe is queued at the end
rather than at once because the scheduler starts an evaluation as soon as its parent has any
checkpoint, and the demo should probe the trained model, not its first save. The pending probe
is remembered in the settings, so closing the app mid-demo and reopening it still queues it.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from db import RunSummary, Store
from ddae_core.engine.config import preset_path
from ddae_core.jobs import examples
from ddae_core.jobs.eval_specs import probe_spec
from ddae_core.jobs.examples import CLASSIFY_EXAMPLE, DEMO_EXAMPLE, DEMO_PROBE
from ddae_core.jobs.specs import train_spec
from ddae_core.rundir import RunStatus

from .launch.feed import Launcher
from .launch.kinds import gpus_for
from .workspace import settings

log = logging.getLogger(__name__)

DEMO_MINUTES = 2.0
DEMO_TIMESTEPS = "1,11,51,101"
DEMO_LIMITS = {"train_limit": 4000, "test_limit": 1000}
DEMO_EXAMPLE_PROBE = {**DEMO_LIMITS, **DEMO_PROBE}
DEMO_TAG = "demo"
PENDING_KEY = "demo/pending"        # "workspace|train run id" entries whose probe is not queued yet


class DemoController(QObject):
    """Queues the demo's train run, then its probe when the train run is done."""

    train_queued = Signal(str)
    probe_queued = Signal(str, str)     # train run id, probe run id
    example_queued = Signal(str, str)   # the bundled example's train run id, its live probe's id

    def __init__(self, store: Store, launcher: Launcher, minutes: float = DEMO_MINUTES, parent=None):
        super().__init__(parent)
        self.store = store
        self.launcher = launcher
        self.minutes = minutes
        self.probe_options: dict = dict(DEMO_LIMITS)
        self.example_probe_options: dict = dict(DEMO_EXAMPLE_PROBE)
        self.train_overrides: dict = {}
        self.example: str | None = DEMO_EXAMPLE if DEMO_EXAMPLE in examples.available() else None
        self.example_run: str | None = None
        self.classify_run: str | None = None   # the bundled CIFAR-10 model, for the Classify view

    def start(self, device: str = "auto") -> str:
        """Import and probe the bundled example (when there is one), then queue the user's train run; its id."""
        if self.example is not None:
            self.start_example(device)
        return self.start_training(device)

    def start_example(self, device: str = "auto") -> str:
        """Copy the bundled example into the workspace and queue a live probe of it ahead of everything."""
        train_dir, *others = self._install(self.example)
        if CLASSIFY_EXAMPLE in examples.available():
            self.classify_run = self._install(CLASSIFY_EXAMPLE)[0].name
        spec = probe_spec(train_dir, timesteps=DEMO_TIMESTEPS, layers="all", device=device,
                          name=f"demo: probe grid of the bundled {self.example} model", **self.example_probe_options)
        spec["device"]["gpus"] = gpus_for(device, 1)
        probe_id = self.launcher.submit(spec, priority=2)
        self.store.set_tags(probe_id, [DEMO_TAG])
        self.example_run = train_dir.name
        self.example_queued.emit(train_dir.name, probe_id)
        return probe_id

    def _install(self, name: str) -> list:
        """Copy a bundled example into the workspace; its run dirs, train run first."""
        installed = examples.install(self.store.workspace, name)
        for run_dir in installed:
            # Finished runs: say so now, so the view shows them as they are before the ingester reads their events.
            self.store.register_run(run_dir)
            self.store.set_status(run_dir.name, RunStatus.DONE)
        return installed

    def start_training(self, device: str = "auto") -> str:
        """Queue the demo's train run of the user's own; returns its id."""
        spec = train_spec(config=self.train_overrides.get("config") or preset_path("tiny-ddpm"),
                          data=self.train_overrides.get("data", "builtin:shapes"),
                          steps=self.train_overrides.get("steps", 100_000),
                          batch_size=self.train_overrides.get("batch_size"), device=device,
                          name="demo: tiny-ddpm on builtin:shapes", minutes=max(self.minutes, 10 / 60))
        spec["device"]["gpus"] = gpus_for(device, 1)
        run_id = self.launcher.submit(spec, priority=0)
        self.store.set_tags(run_id, [DEMO_TAG])
        self._set_pending(self._pending() + [run_id])
        self.train_queued.emit(run_id)
        return run_id

    def check(self) -> list[str]:
        """Queue the probe of every pending demo run that is done; returns the probe run ids."""
        queued = []
        pending = self._pending()
        keep = []
        for run_id in pending:
            try:
                record = self.store.get_run(run_id)
            except LookupError:
                continue                        # deleted: forget it
            if record.status != RunStatus.DONE:
                keep.append(run_id)             # still training, or cancelled and maybe resumed later
                continue
            try:
                spec = probe_spec(self.store.run_dir(run_id), timesteps=DEMO_TIMESTEPS, layers="all",
                                  device=record.device_request, name="demo: probe grid", **self.probe_options)
                spec["device"]["gpus"] = gpus_for(record.device_request, 1)
                probe_id = self.launcher.submit(spec, priority=1)
                self.store.set_tags(probe_id, [DEMO_TAG])
            except Exception as exc:  # noqa: BLE001 - the demo must never take the window down
                log.warning("Could not queue the demo's probe grid: %s", exc)
                continue
            queued.append(probe_id)
            self.probe_queued.emit(run_id, probe_id)
        if pending != keep:
            self._set_pending(keep)
        return queued

    def pending(self) -> list[str]:
        return self._pending()

    def earlier_runs(self) -> list[RunSummary]:
        """The demo runs this workspace already has (a second demo queues them again, numbered)."""
        return self.store.list_runs(tag=DEMO_TAG, limit=50)

    # Settings, per workspace.
    def _prefix(self) -> str:
        return f"{self.store.workspace}|"

    def _all(self) -> list[str]:
        value = settings().value(PENDING_KEY) or []
        return [value] if isinstance(value, str) else [str(v) for v in value]

    def _pending(self) -> list[str]:
        return [v[len(self._prefix()):] for v in self._all() if v.startswith(self._prefix())]

    def _set_pending(self, run_ids: list[str]) -> None:
        others = [v for v in self._all() if not v.startswith(self._prefix())]
        s = settings()
        s.setValue(PENDING_KEY, others + [self._prefix() + r for r in run_ids])
        s.sync()


class DemoBanner(QFrame):
    """The offer shown above the run table while the workspace is empty."""

    start_demo = Signal()

    def __init__(self, minutes: float = DEMO_MINUTES, parent=None):
        super().__init__(parent)
        self.setObjectName("demoBanner")
        self.setStyleSheet("#demoBanner { background: #eef5fc; border: 1px solid #b9d4ee; border-radius: 6px; }")
        title = QLabel("<b style='font-size:13pt'>This workspace has no runs yet.</b>")
        text = QLabel(
            "The demo opens a small diffusion model (tiny-ddpm) that comes with the tool, trained for hours on "
            "generated shapes, and probes what each of its layers knows at each noise level: the layer × noise "
            "heatmap fills in cell by cell, against raw pixels and the same network untrained. Then it trains a "
            f"model of your own for {minutes:g} minutes, so you see the loss curve grow and sample grids appear."
            + (" The Classify tab opens on a tiny-ddpm trained on CIFAR-10: drop a photo on it."
               if CLASSIFY_EXAMPLE in examples.available() else ""))
        text.setWordWrap(True)
        self.button = QPushButton("▶  Run the demo")
        self.button.setMinimumHeight(36)
        self.button.setStyleSheet("font-weight: 600; padding: 4px 16px;")
        self.button.clicked.connect(self.start_demo)
        words = QVBoxLayout()
        words.addWidget(title)
        words.addWidget(text)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 10)
        layout.addLayout(words, 1)
        layout.addWidget(self.button)
