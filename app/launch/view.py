"""Launch: one form per job kind. A form builds a spec with the engine's own spec functions, so a bad
value is refused, at its field, in the CLI's words, before anything is written or queued.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ddae_core.engine import data as datasets
from ddae_core.engine.config import load_config, preset_names
from ddae_core.engine.errors import ConfigError, UserError
from ddae_core.rundir import list_checkpoints

from .cluster_settings import ClusterProfilesDialog, cluster_choices, workspace_default
from .feed import Launcher, NameTaken, RunSummary
from .fields import ERROR_STYLE, DataChooser, Field, FieldRow, message_of, sentence
from .grid_form import GridSweepForm, grid_rows
from .kinds import KINDS, QUICK, KindForm, cuda_available, gpus_for
from .like_this import form_values

log = logging.getLogger(__name__)


class LaunchForm(GridSweepForm, QWidget):
    """The form of one job kind; submit() validates, marks bad fields, and queues (one run, or a grid sweep)."""

    queued = Signal(str)        # run id

    def __init__(self, kind: KindForm, launcher: Launcher | None, parent=None):
        super().__init__(parent)
        self.kind = kind
        self.launcher = launcher
        self.rows: dict[str, FieldRow] = {}
        self._parents: list[RunSummary] = []

        title = QLabel(f"<h2 style='margin:0'>{kind.title}</h2>")
        about = QLabel(kind.about)
        about.setWordWrap(True)
        about.setStyleSheet("color: #555;")
        form_host = QWidget()
        form_host.setMaximumWidth(760)
        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(6)
        line = 0
        for section, fields in kind.sections:
            header = QLabel(f"<b>{section}</b>")
            header.setStyleSheet("margin-top: 10px; border-bottom: 1px solid #c8c8c8; padding-bottom: 2px;")
            grid.addWidget(header, line, 0, 1, 2)
            line += 1
            for field in fields:
                row = FieldRow(field, self._special_editor(field))
                self.rows[field.name] = row
                label = QLabel(field.label)
                label.setToolTip(field.tip)
                label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
                label.setContentsMargins(0, 4, 0, 0)
                grid.addWidget(label, line, 0)
                grid.addWidget(row, line, 1)
                line += 1
        outer = QVBoxLayout(form_host)
        outer.addWidget(title)
        outer.addWidget(about)
        outer.addLayout(grid)
        outer.addStretch(1)

        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(form_host)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.message = QLabel()
        self.message.setWordWrap(True)
        self.submit_button = QPushButton("Queue job")
        self.submit_button.setDefault(True)
        self.submit_button.setMinimumWidth(140)
        self.submit_button.clicked.connect(self.submit)
        # Where the job runs: this machine, or a Slurm cluster profile of the workspace (cluster.yaml).
        self.run_on = QComboBox()
        self.run_on.setToolTip("This machine's GPUs/CPU, or a Slurm cluster profile (Settings > Cluster profiles)")
        self.run_on.activated.connect(self._run_on_chosen)
        self._run_on_picked = False          # until the user picks, the form follows the workspace's default
        self.profiles_button = QPushButton("Profiles…")
        self.profiles_button.setToolTip("Edit the workspace's Slurm cluster profiles")
        self.profiles_button.clicked.connect(self.edit_profiles)
        self.count = QLabel()            # how many runs a grid sweep queues
        self.count.setStyleSheet("color: #555;")
        for row in self.rows.values():
            row.changed.connect(self._update_count)
        bottom = QHBoxLayout()
        bottom.addWidget(self.message, 1)
        bottom.addWidget(self.count)
        bottom.addWidget(QLabel("Run on"))
        bottom.addWidget(self.run_on)
        bottom.addWidget(self.profiles_button)
        bottom.addWidget(self.submit_button)
        self.refresh_clusters()
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addLayout(bottom)

        if "config" in self.rows:
            self.rows["config"].editor.currentIndexChanged.connect(self._preset_changed)
            self._preset_changed()
        if "parent" in self.rows:
            self.rows["parent"].editor.currentIndexChanged.connect(self._parent_changed)
        if "quick" in self.rows:
            self.rows["quick"].editor.toggled.connect(self._quick_toggled)
        if "device" in self.rows:
            self.rows["device"].editor.currentIndexChanged.connect(self._device_changed)
            self._device_changed()
        if "sweep" in self.rows:
            self.rows["sweep"].editor.toggled.connect(self._sweep_toggled)
            self._sweep_toggled(self.rows["sweep"].editor.isChecked())

    def _special_editor(self, field: Field) -> QWidget | None:
        if field.kind == "data":
            return DataChooser(allow_parent=self.kind.name != "train", descriptions=datasets.describe_specs())
        if field.name == "config":
            combo = QComboBox()
            for name in preset_names():
                combo.addItem(name, name)
            combo.setCurrentIndex(max(0, combo.findData("tiny-ddpm")))
            return combo
        if field.name in ("priority", "gpus"):
            spin = QSpinBox()
            spin.setRange(-1000 if field.name == "priority" else 0, 1000 if field.name == "priority" else 64)
            spin.setValue(int(field.default or 0))
            return spin
        return None

    # Values.
    def values(self) -> dict[str, Any]:
        """Every field's value; ConfigError for the first that cannot even be parsed."""
        out: dict[str, Any] = {}
        grid = set(grid_rows(self.kind, self.rows))
        for name, row in self.rows.items():
            if name in grid:
                out[name] = None            # a list or a range: each point of the grid sets it
            elif isinstance(row.editor, QSpinBox):
                out[name] = row.editor.value()
            else:
                out[name] = row.value()
        return out

    def set_values(self, **values: Any) -> None:
        """Fill fields by name (text as typed); for tests, scripts and presets."""
        for name, value in values.items():
            row = self.rows[name]
            if isinstance(row.editor, QSpinBox):
                row.editor.setValue(int(value))
            elif name == "overrides" and isinstance(value, dict):
                row.set_text(yaml.safe_dump(value, sort_keys=False, default_flow_style=None))
            else:
                row.set_text("" if value is None else str(value))

    def fill(self, values: dict[str, Any]) -> None:
        """Set fields by name to values (like_this.form_values): check boxes, the parent and the rest as text."""
        for name, value in values.items():
            row = self.rows[name]
            if isinstance(row.editor, QCheckBox):
                row.editor.setChecked(bool(value))
            elif name == "parent":
                self.select_parent(value)
            else:
                self.set_values(**{name: value})
        self._update_count()

    def set_parent_runs(self, runs: Sequence[RunSummary]) -> None:
        """The runs an evaluation can start from (train and import runs), newest first."""
        if "parent" not in self.rows:
            return
        combo: QComboBox = self.rows["parent"].editor
        current = combo.currentData()
        self._parents = list(runs)
        combo.blockSignals(True)
        combo.clear()
        for run in self._parents:
            combo.addItem(f"{run.name}  ·  {run.status}  ·  {run.id}", run.id)
        index = combo.findData(current) if current else 0
        combo.setCurrentIndex(max(0, index))
        combo.blockSignals(False)
        if combo.currentData() != current:
            self._parent_changed()

    def select_parent(self, run_id: str) -> None:
        if "parent" in self.rows:
            combo: QComboBox = self.rows["parent"].editor
            index = combo.findData(run_id)
            if index >= 0:
                combo.setCurrentIndex(index)
                self.refresh_checkpoints()

    def refresh_checkpoints(self) -> None:
        if "checkpoint" not in self.rows or self.launcher is None:
            return
        combo: QComboBox = self.rows["checkpoint"].editor
        run_id = self.rows["parent"].editor.currentData() if "parent" in self.rows else None
        text = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("latest", "latest")
        if self.kind.name == "fid":
            combo.addItem("all", "all")         # an fid job can score every checkpoint in one run
        if run_id:
            for step, _ in reversed(list_checkpoints(self.launcher.run_dir(run_id))):
                combo.addItem(f"step {step}", step)
        index = combo.findText(text)
        combo.setCurrentIndex(max(0, index))
        if index < 0 and text and text != "latest":
            combo.setEditText(text)             # a step typed by hand stays, even if not saved yet
        combo.blockSignals(False)

    def refresh_clusters(self) -> None:
        """'this machine' and the workspace's cluster profiles, keeping the choice."""
        current = self.run_on.currentData()
        if not self._run_on_picked and self.launcher is not None:
            current = workspace_default(self.launcher.workspace)
        self.run_on.blockSignals(True)
        self.run_on.clear()
        choices = cluster_choices(self.launcher.workspace) if self.launcher else cluster_choices(Path("."))[:1]
        for label, name in choices:
            self.run_on.addItem(label, name)
        self.run_on.setCurrentIndex(max(0, self.run_on.findData(current)))
        self.run_on.blockSignals(False)

    def _run_on_chosen(self, _index: int) -> None:
        self._run_on_picked = True

    def edit_profiles(self) -> None:
        if self.launcher is not None:
            ClusterProfilesDialog(self.launcher.workspace, self).exec()
            self.refresh_clusters()

    def showEvent(self, event) -> None:
        # The parent may have saved checkpoints since the form was last shown; profiles may have changed.
        self.refresh_checkpoints()
        self.refresh_clusters()
        super().showEvent(event)

    # Reactions.
    def _preset_changed(self) -> None:
        try:
            cfg = load_config(self.rows["config"].editor.currentData())
        except UserError:
            return
        studio = cfg.get("studio") or {}
        self.rows["config"].editor.setToolTip(str(studio.get("description", "")))
        hints = {
            "steps": f"preset: {studio['steps']} steps" if studio.get("steps") else
                     f"preset: {cfg.get('n_epoch')} epochs",
            "epochs": f"preset: {cfg.get('n_epoch')}",
            "batch_size": f"preset: {cfg.get('batch_size')}",
            "lr": f"preset: {studio.get('lr', cfg.get('lrate'))}",
            "checkpoint_every_steps": f"preset: {studio.get('checkpoint_every_steps', 1000)}",
            "sample_every_steps": f"preset: {studio.get('sample_every_steps', 1000)}",
        }
        for name, hint in hints.items():
            if name in self.rows:
                self.rows[name].set_placeholder(hint)
        if "data" in self.rows and not self.rows["data"].value():
            default = studio.get("dataset") or {"cifar": "cifar10", "tiny": "tiny-imagenet:"}.get(
                str(cfg.get("dataset")), "builtin:shapes")
            self.rows["data"].set_text(default)

    def _parent_changed(self) -> None:
        self.refresh_checkpoints()

    def _quick_toggled(self, on: bool) -> None:
        for name, value in QUICK.items():
            if name in self.rows:
                self.rows[name].set_text(str(value) if on else "")

    def _sweep_toggled(self, on: bool) -> None:
        for name, row in self.rows.items():
            if name.startswith("sweep_"):
                row.setEnabled(on)

    def _device_changed(self) -> None:
        if "gpus" in self.rows:
            device = self.rows["device"].editor.currentData()
            spin: QSpinBox = self.rows["gpus"].editor
            spin.setEnabled(device != "cpu")
            if device == "cpu":
                spin.setValue(0)
            elif spin.value() == 0 and (device == "cuda" or cuda_available()):
                spin.setValue(1)

    # Submitting.
    def clear_errors(self) -> None:
        for row in self.rows.values():
            row.show_error(None)
        self.message.clear()

    def build_spec(self) -> dict:
        values = self.values()
        spec = self.kind.build(values, self.launcher.workspace if self.launcher else Path("."))
        spec["device"]["gpus"] = gpus_for(spec["device"]["request"], values.get("gpus"))
        return spec

    def submit(self) -> str | None:
        """Validate and queue; on a bad value mark its field and queue nothing. Returns the run id."""
        self.clear_errors()
        try:
            specs = self.build_specs()
        except ConfigError as exc:
            self.mark(exc.field, message_of(exc))
            return None
        except UserError as exc:
            self.mark(self.kind.user_error_field, str(exc))
            return None
        if self.launcher is None:
            return None
        if len(specs) > 1:
            return self._submit_sweep(specs)
        spec = specs[0]
        run_id = self.queueing(lambda: self.launcher.submit(
            spec, priority=int(self.values().get("priority") or 0), cluster=self.run_on.currentData(),
            name_chosen=bool((self.values().get("name") or "").strip())), "Nothing was queued")
        if run_id is None:
            return None
        where = f" for cluster {self.run_on.currentData()}" if self.run_on.currentData() else ""
        self.show_message(f"Queued {spec.get('name') or run_id} ({run_id}){where}.")
        self.queued.emit(run_id)
        return run_id

    def queueing(self, queue, nothing: str):
        """queue() through the one door, or None with nothing queued: a bad value or a taken name marks its
        field, anything else is one sentence starting with `nothing` (never a traceback dialog; the log keeps it)."""
        try:
            return queue()
        except ConfigError as exc:
            self.mark(exc.field, message_of(exc))
        except NameTaken as exc:
            self.mark("name", str(exc))
        except (UserError, ValueError, LookupError, OSError) as exc:
            self.show_message(f"{nothing}: {exc}", error=True)
        except Exception as exc:
            log.exception(nothing)
            self.show_message(f"{nothing}: {exc.__class__.__name__}: {exc}", error=True)
        return None

    def mark(self, field: str, message: str) -> None:
        """Show `message` at the widget of `field` (the form's message line if no widget holds it)."""
        name = self.kind.field_for(field, self.rows)
        if name is None:
            self.show_message(sentence(field, message), error=True)
            return
        row = self.rows[name]
        label = row.field.label if name == field or field.startswith("studio.") else field
        row.show_error(sentence(label, message))
        self.show_message("Nothing was queued: fix the marked field.", error=True)
        self._reveal(row)

    def _reveal(self, row: FieldRow) -> None:
        scroll = self.findChild(QScrollArea)
        if scroll is not None:
            scroll.ensureWidgetVisible(row)
        row.editor.setFocus()

    def show_message(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet(ERROR_STYLE if error else "color: #2e7d32;")
        self.message.setText(text)

    def error_of(self, name: str) -> str:
        return self.rows[name].error_text


class LaunchView(QWidget):
    """The job kinds on the left, the chosen kind's form on the right."""

    queued = Signal(str)

    def __init__(self, launcher: Launcher | None, parent=None):
        super().__init__(parent)
        self.kinds = QListWidget()
        self.stack = QStackedWidget()
        self.forms: dict[str, LaunchForm] = {}
        for kind in KINDS:
            form = LaunchForm(kind, launcher)
            form.queued.connect(self.queued)
            self.forms[kind.name] = form
            self.stack.addWidget(form)
            self.kinds.addItem(kind.title)
        self.kinds.setMaximumWidth(220)
        self.kinds.setSpacing(2)
        self.kinds.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.kinds.setCurrentRow(0)
        splitter = QSplitter()
        splitter.addWidget(self.kinds)
        splitter.addWidget(self.stack)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([200, 800])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

    def form(self, kind: str) -> LaunchForm:
        return self.forms[kind]

    def show_kind(self, kind: str, parent_run: str | None = None, checkpoint: int | None = None) -> LaunchForm:
        index = [k.name for k in KINDS].index(kind)
        self.kinds.setCurrentRow(index)
        form = self.forms[kind]
        if parent_run:
            form.select_parent(parent_run)
        if checkpoint is not None and "checkpoint" in form.rows:
            combo: QComboBox = form.rows["checkpoint"].editor
            found = combo.findData(int(checkpoint))
            if found >= 0:
                combo.setCurrentIndex(found)
            else:
                combo.setEditText(str(checkpoint))
        return form

    def launch_like(self, spec: dict) -> LaunchForm:
        """Show the form of the spec's kind filled from it (Launch like this): queued unchanged, the same run."""
        form = self.show_kind(str(spec["kind"]))
        form.clear_errors()
        form.fill(form_values(spec))
        form.show_message(f"Filled from run {spec.get('name') or spec.get('id')}; change what differs, or type a list "
                          "or a range in a number field for a sweep.")
        return form

    def set_parent_runs(self, runs: Sequence[RunSummary]) -> None:
        for form in self.forms.values():
            form.set_parent_runs(runs)
