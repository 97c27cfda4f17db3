"""What the probe grid's heatmap shows beside (and under) its linear cells: the k-NN grid and the aggregation weights.

A fast grid writes its k-NN cells (knn_grid.json) as soon as its features are cached, before any head is trained:
the main heatmap shows them at once, in italics with a trailing "k", and each linear cell replaces its k-NN stand-in
as its row of heads finishes. Beside it, on request, a second heatmap: the whole k-NN grid (to read the two side by
side), or, for an aggregate grid, its learned mixing weights over the cells (they sum to 100%).
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ddae_core.rundir.figures import percent, points

from ..widgets.heatmap import GridHeatmap

NOTHING, KNN, WEIGHTS = "nothing", "k-NN", "aggregation weights"
KNN_TITLE = "k-NN accuracy (%), k=20 cosine, from the cached features"
WEIGHTS_TITLE = "Learned aggregation weights (%), summing to 100"


def cells_of(table: dict | None) -> dict[tuple[int, str], float]:
    """{(t, layer): value} of a grid.json-style {"t": {layer: value}} table."""
    return {(int(t), str(layer)): float(v) for t, row in (table or {}).items() for layer, v in row.items()
            if v is not None}


def with_stand_ins(linear: dict[tuple[int, str], float], knn: dict | None
                   ) -> tuple[list[tuple[int, str, float]], set[tuple[int, str]]]:
    """The main heatmap's cells: every linear cell, and the k-NN value where no linear cell is yet; and the latter."""
    stand_ins = {cell: v for cell, v in cells_of((knn or {}).get("accuracy")).items() if cell not in linear}
    merged = {**stand_ins, **linear}
    return [(t, layer, v) for (t, layer), v in merged.items()], set(stand_ins)


def aggregate_text(aggregate: dict) -> str:
    best = aggregate.get("best_cell") or {}
    text = f"Learned aggregation over every cell: {percent(aggregate['accuracy'])}"
    if best:
        text += (f", {points(aggregate['gain'])} points over the best single cell ({best['layer']} at "
                 f"t={best['timestep']}, {percent(best['accuracy'])})")
    return text + "."


class BesideGrid(QWidget):
    """A choice (nothing | k-NN | aggregation weights) and the second heatmap it shows."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.choice = QComboBox()
        self.choice.addItems([NOTHING, KNN, WEIGHTS])
        self.choice.setToolTip("Show the k-NN grid (from the same cached features) or an aggregate grid's learned "
                               "mixing weights beside the linear probe's heatmap")
        self.choice.currentTextChanged.connect(self._redraw)
        self.label = QLabel("Beside:")
        self.heatmap = GridHeatmap(KNN_TITLE)
        self.heatmap.hide()
        self.note = QLabel("")              # the aggregate's accuracy and gain, once known
        self.note.setStyleSheet("color: #303030;")
        self.note.setWordWrap(True)
        self.note.hide()
        self.knn: dict | None = None
        self.aggregate: dict | None = None
        self.axes: tuple[list[int], list[str], dict[int, str]] = ([], [], {})
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.heatmap, 1)
        self._sync_choices()

    def controls(self) -> QHBoxLayout:
        """The label and the choice, for the panel's bar."""
        row = QHBoxLayout()
        row.addWidget(self.label)
        row.addWidget(self.choice)
        return row

    def reset(self) -> None:
        self.knn = self.aggregate = None
        self.heatmap.clear_cells()
        self._sync_choices()

    def set_axes(self, timesteps: list[int], layers: list[str], labels: dict[int, str]) -> None:
        self.axes = (list(timesteps), list(layers), dict(labels))
        self._redraw()

    def set_knn(self, knn: dict | None) -> None:
        self.knn = knn
        self._sync_choices()

    def set_aggregate(self, aggregate: dict | None) -> None:
        self.aggregate = aggregate
        self.note.setText(aggregate_text(aggregate) if aggregate else "")
        self.note.setVisible(bool(aggregate))
        self._sync_choices()

    def show_beside(self, what: str) -> None:
        self.choice.setCurrentText(what)

    def _sync_choices(self) -> None:
        model = self.choice.model()
        for row, there in enumerate((True, self.knn is not None, self.aggregate is not None)):
            model.item(row).setEnabled(there)
        if not model.item(self.choice.currentIndex()).isEnabled():
            self.choice.setCurrentText(NOTHING)
        there = self.knn is not None or self.aggregate is not None
        self.label.setVisible(there)
        self.choice.setVisible(there)
        self._redraw()

    def _redraw(self, *_) -> None:
        what = self.choice.currentText()
        self.heatmap.setVisible(what != NOTHING)
        if what == NOTHING:
            return
        timesteps, layers, labels = self.axes
        self.heatmap.clear_cells()
        self.heatmap.set_axes(timesteps, layers, labels)
        if what == KNN:
            self.heatmap.set_title(KNN_TITLE)
            self.heatmap.set_value_name("accuracy")
            self.heatmap.set_levels()
            cells = cells_of((self.knn or {}).get("accuracy"))
        else:
            self.heatmap.set_title(WEIGHTS_TITLE)
            self.heatmap.set_value_name("aggregation weight")
            self.heatmap.set_levels(0.0, max(cells_of((self.aggregate or {}).get("weights")).values(), default=1.0))
            cells = cells_of((self.aggregate or {}).get("weights"))
        self.heatmap.set_cells((t, layer, v) for (t, layer), v in cells.items())
        self.heatmap.set_status(f"{len(cells)} cells." if what == KNN else
                                "How much each cell contributes to the one shared head (softmax weights).")
