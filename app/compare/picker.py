"""Choosing Compare's runs inside Compare (a searchable checklist), and remembering them per workspace."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..workspace import settings
from .feed import RunSummary

SELECTION_KEY = "compare/selection"     # ["<workspace>|<run id>", ...] across workspaces


def saved_selection(workspace: Path) -> list[str]:
    """The run ids Compare showed last in `workspace` (in their order)."""
    value = settings().value(SELECTION_KEY) or []
    prefix = f"{workspace}|"
    values = [value] if isinstance(value, str) else [str(v) for v in value]
    return [v[len(prefix):] for v in values if v.startswith(prefix)]


def save_selection(workspace: Path, run_ids: Sequence[str]) -> None:
    prefix = f"{workspace}|"
    value = settings().value(SELECTION_KEY) or []
    others = [v for v in ([value] if isinstance(value, str) else [str(v) for v in value]) if not v.startswith(prefix)]
    s = settings()
    s.setValue(SELECTION_KEY, others + [prefix + r for r in run_ids])
    s.sync()


class RunPicker(QDialog):
    """Tick the runs to compare; the search narrows the list by name, id, kind or status."""

    def __init__(self, runs: Sequence[RunSummary], checked: Sequence[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Runs to compare")
        self.resize(560, 520)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search names, ids, kinds, statuses…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._filter)
        self.list = QListWidget()
        chosen = set(checked)
        # The runs already compared come first, in their order; then the rest, newest first.
        ordered = [r for i in checked for r in runs if r.id == i] + [r for r in runs if r.id not in chosen]
        for run in ordered:
            item = QListWidgetItem(f"{run.name}  ·  {run.kind}  ·  {run.status}  ·  {run.id}")
            item.setData(Qt.ItemDataRole.UserRole, run.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if run.id in chosen else Qt.CheckState.Unchecked)
            self.list.addItem(item)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Tick two or more runs; a probe or noisy-classifier run brings its own grid or "
                                "curve, a train run its newest ones."))
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addWidget(buttons)

    def _filter(self, text: str) -> None:
        words = text.lower().split()
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setHidden(not all(w in item.text().lower() for w in words))

    def set_checked(self, run_ids: Sequence[str]) -> None:
        wanted = set(run_ids)
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.data(Qt.ItemDataRole.UserRole) in wanted
                               else Qt.CheckState.Unchecked)

    def checked(self) -> list[str]:
        """The ticked run ids, in list order."""
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())
                if self.list.item(i).checkState() == Qt.CheckState.Checked]
