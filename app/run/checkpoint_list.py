"""The Checkpoints tab of a train run: every saved checkpoint with its time, loss, probe accuracy, FID and size,
the best by each marked; from a row, a probe, samples or an FID of that checkpoint (the Launch form, queued
through the one door) or Classify with its probe's heads."""

from __future__ import annotations

import time

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableView, QVBoxLayout

from ddae_core.rundir import JobKind

from ..widgets.rows import Percent, RowsModel
from .checkpoints import CheckpointRow
from .feed import RunUpdate
from .panels import Panel

HEADERS = ["step", "saved", "loss", "probe accuracy", "probe cell", "FID", "size (MB)", "best by"]
ACTIONS = ((JobKind.PROBE, "Probe…"), (JobKind.SAMPLE, "Sample…"), (JobKind.FID, "FID…"))


def row_values(row: CheckpointRow) -> tuple:
    """One checkpoint as the table shows it (accuracy as a percentage, the time as local clock time)."""
    saved = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.saved)) if row.saved is not None else None
    size = round(row.size_bytes / 2**20, 2) if row.size_bytes is not None else None
    accuracy = Percent(row.accuracy) if row.accuracy is not None else None
    return (row.step, saved, row.loss, accuracy, row.cell, row.fid, size, ", ".join(row.best) or None)


class CheckpointsPanel(Panel):
    """A train run's checkpoints as a list; the buttons act on the selected one."""

    title = "Checkpoints"
    evaluate_checkpoint = Signal(str, str, int)     # job kind, this run, the checkpoint's step
    classify_head = Signal(str, str, int)           # the checkpoint's probe run, '' (its best cell), -1 (its t)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.run_id: str | None = None
        self.rows: list[CheckpointRow] = []
        self.model = RowsModel(HEADERS)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.status = QLabel("No checkpoint saved yet.")
        self.status.setStyleSheet("color: #555;")
        self.buttons: dict[str, QPushButton] = {}
        bar = QHBoxLayout()
        bar.addWidget(self.status, 1)
        for kind, text in ACTIONS:
            button = self.buttons[kind] = QPushButton(text)
            button.setToolTip(f"Open the {text.rstrip('…').lower()} form on this checkpoint")
            button.clicked.connect(lambda _=False, k=kind: self._evaluate(k))
            bar.addWidget(button)
        self.classify_button = QPushButton("Classify…")
        self.classify_button.clicked.connect(self._classify)
        bar.addWidget(self.classify_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(bar)
        self._selection_changed()

    def apply(self, update: RunUpdate) -> None:
        self.run_id = update.record.id
        if update.checkpoint_rows is None:
            return
        selected = self.selected()
        self.rows = list(update.checkpoint_rows)
        self.model.set_rows(HEADERS, [row_values(r) for r in self.rows])
        steps = [r.step for r in self.rows]
        if selected is not None and selected.step in steps:
            self.select_step(selected.step)
        measured = sum(r.accuracy is not None or r.fid is not None for r in self.rows)
        self.status.setText(f"{len(self.rows)} checkpoint(s), {measured} with a probe or an FID." if self.rows
                            else "No checkpoint saved yet.")
        self._selection_changed()

    def selected(self) -> CheckpointRow | None:
        picked = self.table.selectionModel().selectedRows()
        return self.rows[picked[0].row()] if picked and picked[0].row() < len(self.rows) else None

    def select_step(self, step: int) -> None:
        self.table.selectRow([r.step for r in self.rows].index(step))

    def _selection_changed(self, *_args) -> None:
        row = self.selected()
        for button in self.buttons.values():
            button.setEnabled(row is not None)
        self.classify_button.setEnabled(row is not None and row.probe_run is not None)
        self.classify_button.setToolTip("Classify images with this checkpoint's probe heads" if row and row.probe_run
                                        else "Probe this checkpoint first: Classify uses a probe's trained heads")

    def _evaluate(self, kind: str) -> None:
        row = self.selected()
        if row is not None and self.run_id is not None:
            self.evaluate_checkpoint.emit(kind, self.run_id, row.step)

    def _classify(self) -> None:
        row = self.selected()
        if row is not None and row.probe_run is not None:
            self.classify_head.emit(row.probe_run, "", -1)
