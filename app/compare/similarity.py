"""Compare's Similarity tab: each selected similarity run's layer x layer CKA and mutual k-NN heatmaps, as its
Run view tab shows them (one SimilarityPanel per run, titled in the run's colour)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

from ..run.explore_panels import SimilarityPanel
from ..widgets.export import safe_filename
from .feed import RunBundle

EMPTY = ("None of these runs is a similarity run with its result written; `ddae similarity` or Evaluate ▾ → "
         "Similarity compares a run's layers with another model's.")


class SimilarityRunsPanel(QWidget):
    """One SimilarityPanel per compared similarity run whose similarity.json is written."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.panels: dict[str, SimilarityPanel] = {}
        self._shown: list[tuple[str, str]] = []
        self.message = QLabel(EMPTY)
        self.message.setWordWrap(True)
        holder = QWidget()
        self._column = QVBoxLayout(holder)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(holder)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(scroll, 1)

    def set_bundles(self, bundles: list[RunBundle], colors: dict[str, QColor]) -> None:
        """Show the similarity runs among `bundles`; rebuilt only when that list (or a name) changed."""
        shown = [b for b in bundles if b.similarity is not None]
        if [(b.id, b.name) for b in shown] == self._shown:
            return
        self._shown = [(b.id, b.name) for b in shown]
        for panel in self.panels.values():
            self._column.removeWidget(panel)
            panel.deleteLater()
        self.panels = {}
        for b in shown:
            panel = SimilarityPanel()
            panel.set_result(b.similarity)
            panel.summary.setText(f"<span style='color:{colors[b.id].name()}'>&#9632;</span> <b>{b.name}</b>: "
                                  + panel.summary_text())
            panel.setMinimumHeight(320)
            self.panels[b.id] = panel
            self._column.addWidget(panel)
        self.message.setText(f"{len(shown)} similarity run(s)." if shown else EMPTY)

    def export(self, folder: Path) -> list[Path]:
        out = []
        for run_id, name in self._shown:
            for key, heatmap in self.panels[run_id].heatmaps.items():
                base = folder / f"similarity_{key}_{safe_filename(name)}"
                out += [heatmap.export_png(base.with_suffix(".png")), heatmap.export_csv(base.with_suffix(".csv"))]
        return out
