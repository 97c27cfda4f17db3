"""Settings > Cluster profiles: edit the workspace's cluster.yaml (Slurm targets for the queue).

A profile's fields are checked by the engine's own profile_from_dict, so a bad value is refused here in
the same sentence `ddae` would print, and nothing is written until every profile is valid. A profile with
no partition or no GPUs is legal (a CPU-only cluster's default partition) but more often a field left
empty, so Save says so once and saves on the second press. Check saves, then runs `ddae cluster check NAME`
in a subprocess on a background Worker and shows what it prints.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ddae_core.engine.errors import UserError
from ddae_core.jobs.cluster import (
    LOCAL_LABEL,
    NAME_RE,
    ClusterProfile,
    default_cluster,
    load_cluster_file,
    profile_from_dict,
    save_profiles,
)
from ddae_core.rundir import CLUSTER_FILE

from ..background import Worker

TEXT_FIELDS = (("partition", "Partition"), ("account", "Account"), ("qos", "QOS"),
               ("time_limit", "Time limit"), ("mem_per_gpu", "Memory per GPU"), ("mem", "Memory (CPU job)"),
               ("constraint", "Constraint"), ("python", "Python on the nodes"))
INT_FIELDS = (("gpus_per_node", "GPUs per node", 0), ("cpus_per_gpu", "CPUs per GPU", 1),
              ("cpus", "CPUs (CPU job)", 1), ("nodes", "Nodes (at most)", 1), ("max_requeues", "Requeues", 0))
LIST_FIELDS = (("sbatch", "Extra #SBATCH lines"), ("setup", "Setup lines"))


def cluster_choices(workspace: Path) -> list[tuple[str, str | None]]:
    """("this machine", None) and each profile of the workspace as (label, name); a bad cluster.yaml gives
    only this machine (the settings dialog says what is wrong with it)."""
    try:
        profiles = load_cluster_file(workspace)[0]
    except UserError:
        profiles = {}
    return [(LOCAL_LABEL, None)] + [(p.summary(), name) for name, p in profiles.items()]


def workspace_default(workspace: Path) -> str | None:
    """The profile new jobs go to by default (None: this machine, also for a bad cluster.yaml)."""
    try:
        return default_cluster(workspace)
    except UserError:
        return None


def doubtful(profiles: dict[str, ClusterProfile], saved: dict[str, ClusterProfile]) -> str | None:
    """A sentence on the first profile new or changed since `saved` whose empty fields are more likely
    forgotten than meant, or None."""
    for name, profile in profiles.items():
        if saved.get(name) == profile:
            continue
        gaps = ([] if profile.partition else ["no partition (jobs go to Slurm's default one)"]) + \
               ([] if profile.gpus_per_node else ["0 GPUs per node (CPU-only jobs)"])
        if gaps:
            return f"Profile {name} has {' and '.join(gaps)}; set them, or press Save again to keep them."
    return None


def check_command(workspace: Path, name: str) -> list[str]:
    """`ddae cluster check NAME` for the workspace, run by this interpreter."""
    return [sys.executable, "-m", "ddae_core.cli", "cluster", "check", name, "--workspace", str(workspace)]


class ProfileEditor(QWidget):
    """The fields of one profile."""

    def __init__(self, parent=None):
        super().__init__(parent)
        form = QFormLayout(self)
        self.text: dict[str, QLineEdit] = {}
        self.ints: dict[str, QSpinBox] = {}
        self.lists: dict[str, QPlainTextEdit] = {}
        for name, label in TEXT_FIELDS:
            self.text[name] = QLineEdit()
            form.addRow(label, self.text[name])
        self.text["time_limit"].setPlaceholderText("minutes, HH:MM:SS or D-HH:MM:SS")
        self.text["mem_per_gpu"].setPlaceholderText("e.g. 64G (empty: the partition's default)")
        self.text["python"].setPlaceholderText("empty: the interpreter running the queue")
        for name, label, low in INT_FIELDS:
            spin = QSpinBox()
            spin.setRange(low, 100_000)
            self.ints[name] = spin
            form.addRow(label, spin)
        for name, label in LIST_FIELDS:
            edit = QPlainTextEdit()
            edit.setMaximumHeight(70)
            self.lists[name] = edit
            form.addRow(label, edit)
        self.lists["sbatch"].setPlaceholderText("--exclusive\n--mail-type=END")
        self.lists["setup"].setPlaceholderText("module load cuda/12.1\nsource ~/ddae-studio/.venv/bin/activate")

    def set_profile(self, profile: ClusterProfile) -> None:
        for name, edit in self.text.items():
            edit.setText(str(getattr(profile, name) or ""))
        for name, spin in self.ints.items():
            spin.setValue(int(getattr(profile, name)))
        for name, edit in self.lists.items():
            edit.setPlainText("\n".join(getattr(profile, name)))

    def fields(self) -> dict:
        out: dict = {name: edit.text().strip() or None for name, edit in self.text.items()}
        out.update({name: spin.value() for name, spin in self.ints.items()})
        out.update({name: edit.toPlainText() for name, edit in self.lists.items()})
        if out["time_limit"] is None:
            del out["time_limit"]
        return out


class ClusterProfilesDialog(QDialog):
    """The profiles of cluster.yaml: add, remove, edit, save."""

    def __init__(self, workspace: Path, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Cluster profiles")
        self.workspace = Path(workspace)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c62828;")
        default = None
        try:
            self.profiles, default = load_cluster_file(self.workspace)
        except UserError as exc:
            self.profiles = {}
            self.error.setText(f"{exc} Saving replaces the file.")
        self.saved = dict(self.profiles)          # as cluster.yaml holds them
        # Where a new job runs unless its launch form says otherwise (cluster.yaml's `default`).
        self.default = QComboBox()
        self._fill_default(default)
        self.names = QListWidget()
        self.names.addItems(list(self.profiles))
        self.editor = ProfileEditor()
        self._shown: str | None = None
        self._doubt_shown: str | None = None     # the doubt Save showed last: a second Save keeps the values
        self._check_proc: subprocess.Popen | None = None
        self.check_worker: Worker | None = None
        self.check_button = QPushButton("Check")
        self.check_button.setToolTip("Save, then run `ddae cluster check NAME` on the shown profile")
        self.check_button.clicked.connect(self.check_profile)
        self.check_output = QPlainTextEdit()
        self.check_output.setReadOnly(True)
        self.check_output.setMaximumHeight(120)
        self.check_output.hide()
        add, remove = QPushButton("Add…"), QPushButton("Remove")
        add.clicked.connect(self.add_profile)
        remove.clicked.connect(self.remove_profile)
        left = QVBoxLayout()
        left.addWidget(self.names, 1)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        row.addWidget(self.check_button)
        left.addLayout(row)
        about = QLabel(f"Slurm targets for the queue, kept in {self.workspace / CLUSTER_FILE}. The workspace must be "
                       "on a file system the nodes share. Check one with <code>ddae cluster check NAME</code>.")
        about.setWordWrap(True)
        about.setTextFormat(Qt.TextFormat.RichText)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        body = QHBoxLayout()
        body.addLayout(left)
        body.addWidget(self.editor, 1)
        default_row = QHBoxLayout()
        default_row.addWidget(QLabel("New jobs run on"))
        default_row.addWidget(self.default, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(about)
        layout.addLayout(default_row)
        layout.addLayout(body, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.check_output)
        layout.addWidget(buttons)
        self.names.currentTextChanged.connect(self._select)
        self.editor.setEnabled(bool(self.profiles))
        if self.profiles:
            self.names.setCurrentRow(0)

    def _fill_default(self, current: str | None) -> None:
        self.default.clear()
        self.default.addItem(LOCAL_LABEL, None)
        for name in self.profiles:
            self.default.addItem(name, name)
        self.default.setCurrentIndex(max(0, self.default.findData(current)))

    def _keep_shown(self) -> bool:
        """Take the editor's values into the shown profile; False (and a sentence) when they are not valid."""
        if self._shown is None or self._shown not in self.profiles:
            return True
        try:
            self.profiles[self._shown] = profile_from_dict(self._shown, self.editor.fields())
        except UserError as exc:
            self.error.setText(str(exc))
            return False
        self.error.clear()
        return True

    def _select(self, name: str) -> None:
        if name == self._shown:
            return
        if not self._keep_shown():
            self.names.blockSignals(True)
            self.names.setCurrentRow(list(self.profiles).index(self._shown))
            self.names.blockSignals(False)
            return
        self._shown = name or None
        if name in self.profiles:
            self.editor.set_profile(self.profiles[name])
        self.editor.setEnabled(name in self.profiles)

    def add_profile(self, name: str | None = None) -> None:
        if not self._keep_shown():
            return
        if not name:
            name, ok = QInputDialog.getText(self, "New cluster profile", "Name (e.g. a100):")
            if not ok:
                return
        name = name.strip()
        if not NAME_RE.match(name) or name in self.profiles or name == "local":
            self.error.setText(f"A profile name is letters, digits, '.', '_' or '-', new, and not 'local' "
                               f"(got {name!r}).")
            return
        self.profiles[name] = ClusterProfile(name)
        self._fill_default(self.default.currentData())
        self.names.addItem(name)
        self.names.setCurrentRow(self.names.count() - 1)

    def remove_profile(self) -> None:
        row = self.names.currentRow()
        if row < 0:
            return
        name = self.names.item(row).text()
        self._shown = None
        self.profiles.pop(name, None)
        self._fill_default(self.default.currentData())
        self.names.takeItem(row)
        self.error.clear()

    def save(self) -> None:
        if self._write():
            self.accept()

    def _write(self) -> bool:
        """Write cluster.yaml when every profile is valid and its doubts were shown once; False otherwise."""
        if not self._keep_shown():
            return False
        doubt = doubtful(self.profiles, self.saved)
        if doubt is not None and doubt != self._doubt_shown:
            self._doubt_shown = doubt
            self.error.setText(doubt)
            return False
        try:
            save_profiles(self.workspace, self.profiles, default=self.default.currentData())
        except (OSError, UserError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            self.error.setText(f"Could not write {self.workspace / CLUSTER_FILE} ({reason}).")
            return False
        self.saved = dict(self.profiles)
        self.error.clear()
        return True

    def check_profile(self) -> None:
        """Save, then run `ddae cluster check` on the shown profile off the GUI thread, its output below."""
        name = self._shown
        if name is None or (self.check_worker is not None and self.check_worker.isRunning()):
            return
        if not self._write():
            return
        command = check_command(self.workspace, name)
        self.check_output.show()
        self.check_output.setPlainText(f"ddae cluster check {name}")
        self.check_button.setEnabled(False)

        def run(worker: Worker) -> None:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            self._check_proc = proc
            assert proc.stdout is not None
            for line in proc.stdout:
                worker.deliver(line.rstrip("\n"))
            code = proc.wait()
            worker.deliver("(the check passed)" if code == 0 else f"(the check failed: exit {code})")

        self.check_worker = Worker("cluster check", run, self)
        self.check_worker.delivered.connect(self.check_output.appendPlainText)
        self.check_worker.failed.connect(self.check_output.appendPlainText)
        self.check_worker.finished.connect(lambda: self.check_button.setEnabled(True))
        self.check_worker.start()

    def done(self, result: int) -> None:
        """Closing ends a check still running (its subprocess too): no thread outlives the dialog."""
        if self.check_worker is not None and self.check_worker.isRunning():
            self.check_worker.request_stop()
            if self._check_proc is not None and self._check_proc.poll() is None:
                self._check_proc.kill()
            self.check_worker.stop()
        super().done(result)
