"""What the probe grid's heatmap shows beside (and under) its linear cells: the k-NN grid and the aggregation weights.

A fast grid writes its k-NN cells (knn_grid.json) as soon as its features are cached, before any head is trained:
the main heatmap shows them at once, in italics with a trailing "k", and each linear cell replaces its k-NN stand-in
as its row of heads finishes. Beside it, on request, a second heatmap: the whole k-NN grid (to read the two side by
side), or, for an aggregate grid, its learned mixing weights over the cells (they sum to 100%), or the train run's
newest segmentation grid (per-pixel probes' mIoU on builtin:shapes' masks) on the probe grid's axes.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ddae_core.rundir.figures import percent, points

from ..widgets.heatmap import GridHeatmap

NOTHING, KNN, WEIGHTS, MIOU = "nothing", "k-NN", "aggregation weights", "segmentation mIoU"
KNN_TITLE = "k-NN accuracy (%), k=20 cosine, from the cached features"
WEIGHTS_TITLE = "Learned aggregation weights (%), summing to 100"
MIOU_TITLE = "Per-pixel segmentation mIoU (%), layer x noise level"


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


def cell_words(cells) -> str:
    """`out_1 at t=11, out_3 at t=51`."""
    return ", ".join(f"{layer} at t={t}" for t, layer in sorted(cells))


def overlap_text(run: str, timesteps: list[int], layers: list[str], miou: dict[tuple[int, str], float]) -> str:
    """Which cells of the probe grid's axes the segmentation run `run` has, and which of its own lie outside them."""
    axes = {(t, layer) for t in timesteps for layer in layers}
    shared, outside = axes & set(miou), set(miou) - axes
    text = f"mIoU of segmentation run {run}: {len(shared)} of the probe grid's {len(axes)} cells."
    if axes - shared:
        text += f" No segmentation cell at {cell_words(axes - shared)}."
    if outside:
        text += f" Outside the probe grid, not shown: {cell_words(outside)}."
    return text


class BesideGrid(QWidget):
    """A choice (nothing | k-NN | aggregation weights | segmentation mIoU) and the second heatmap it shows."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.choice = QComboBox()
        self.choice.addItems([NOTHING, KNN, WEIGHTS, MIOU])
        self.choice.setToolTip("Show the k-NN grid (from the same cached features), an aggregate grid's learned "
                               "mixing weights, or the newest segmentation grid's mIoU beside the probe's heatmap")
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
        self.segmentation: dict | None = None      # a train run's newest segmentation.json, with its run id
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

    def set_segmentation(self, segmentation: dict | None) -> None:
        self.segmentation = segmentation
        self._sync_choices()

    def show_beside(self, what: str) -> None:
        self.choice.setCurrentText(what)

    def _sync_choices(self) -> None:
        model = self.choice.model()
        offered = (True, self.knn is not None, self.aggregate is not None, self.segmentation is not None)
        for row, there in enumerate(offered):
            model.item(row).setEnabled(there)
        if not model.item(self.choice.currentIndex()).isEnabled():
            self.choice.setCurrentText(NOTHING)
        there = any(offered[1:])
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
        if what == MIOU:
            self._draw_miou()
            return
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

    def _draw_miou(self) -> None:
        """The segmentation grid's cells on the probe grid's axes (its own where there is no probe grid yet)."""
        result = self.segmentation or {}
        timesteps, layers, labels = self.axes
        if not timesteps or not layers:
            timesteps, layers = [int(t) for t in result.get("timesteps", [])], list(result.get("layers", []))
            labels = {int(t): text for t, text in (result.get("labels") or {}).items()}
            self.heatmap.set_axes(timesteps, layers, labels)
        miou = cells_of(result.get("miou"))
        self.heatmap.set_title(MIOU_TITLE)
        self.heatmap.set_value_name("mIoU")
        self.heatmap.set_levels()
        self.heatmap.set_cells((t, layer, v) for (t, layer), v in miou.items() if t in timesteps and layer in layers)
        self.heatmap.set_status(overlap_text(result.get("run", "?"), timesteps, layers, miou))
