"""The Run view's tabs of the kinds that explore what layers hold: a similarity run's layer x layer heatmaps, and a
segmentation run's mIoU grid (the probe grid's panel, its cells holding mIoU)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout

from ddae_core.engine.evaluation.similarity import best_match
from ddae_core.rundir.figures import percent

from ..widgets.common import set_axis_label
from ..widgets.heatmap import GridHeatmap
from .feed import RunUpdate
from .panels import GridPanel, Panel

MEASURES = (("cka", "Linear CKA"), ("mutual_knn", "Mutual k-NN"))


class SimilarityPanel(Panel):
    """CKA and mutual k-NN between every layer of A (rows) and of B (columns); A's best cell's row and its argmax."""

    title = "Similarity"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.result: dict | None = None
        self.heatmaps: dict[str, GridHeatmap] = {}
        splitter = QSplitter(Qt.Orientation.Horizontal)
        for key, name in MEASURES:
            heatmap = GridHeatmap(f"{name} (%), layers of A x layers of B")
            heatmap.set_value_name(name)
            heatmap.set_levels()
            set_axis_label(heatmap.plot, "left", "layer of A")
            set_axis_label(heatmap.plot, "bottom", "layer of B")
            self.heatmaps[key] = heatmap
            splitter.addWidget(heatmap)
        self.summary = QLabel("The heatmaps appear when the run has compared the two models.")
        self.summary.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 0)
        layout.addWidget(self.summary)
        layout.addWidget(splitter, 1)

    def apply(self, update: RunUpdate) -> None:
        if update.result_file is not None:
            self.set_result(update.result_file)

    def set_result(self, result: dict) -> None:
        """Show a similarity.json: rows are A's layers (numbered rows labelled by name), columns B's."""
        self.result = result
        rows = list(range(len(result["layers_a"])))
        labels = dict(zip(rows, result["layers_a"]))
        cell = result.get("best_cell")
        for key, heatmap in self.heatmaps.items():
            heatmap.set_axes(rows, result["layers_b"], labels)
            heatmap.set_cells((r, b, result[key][r][c]) for r in rows for c, b in enumerate(result["layers_b"]))
            match = best_match(result, cell["layer"], key) if cell else None
            heatmap.set_selected((result["layers_a"].index(cell["layer"]), match[0]) if match else None)
        self.summary.setText(self.summary_text())

    def highlighted(self, key: str = "cka") -> tuple[str, str] | None:
        """(A's layer, B's layer) outlined in a heatmap: A's best cell's row at its argmax over B."""
        outlined = self.heatmaps[key].outlined_cell()
        return (self.result["layers_a"][outlined[0]], outlined[1]) if outlined and self.result else None

    def summary_text(self) -> str:
        r = self.result or {}
        if not r:
            return ""
        text = (f"A = {r['a']['name']}, B = {r['b']['name']}; t={r['timestep']}, {r['images']:,} test images with "
                f"the same noise for both; mutual k-NN with k={r['k']}.")
        cell = r.get("best_cell")
        match = best_match(r, cell["layer"]) if cell else None
        if cell and match:
            text += (f" Where does B hold what A's best cell holds? A's best probe cell is {cell['layer']} at "
                     f"t={cell['timestep']} ({percent(cell['accuracy'])}); B holds it most in {match[0]} "
                     f"(CKA {match[1]:.2f}), outlined.")
        else:
            text += " A has no probe grid, so no best cell is outlined: the highest pair is."
        return text


class SegmentationPanel(GridPanel):
    """A segmentation run's grid: per-pixel linear probes, each cell's mIoU over background and the ten shapes."""

    title = "Segmentation grid"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.heatmap.set_title("Per-pixel probe mIoU (%), layer x noise level")
        self.heatmap.set_value_name("mIoU")
        self.heatmap.set_status("No cells yet; each noise level's row appears when its heads are trained.")

    def apply(self, update: RunUpdate) -> None:
        super().apply(update)
        if update.grid_source is None:
            return
        best, total = self.heatmap.best_cell(), len(self.heatmap.axes()[0]) * len(self.heatmap.axes()[1])
        text = f"{len(self.heatmap.cells())} of {total} cells, per-pixel linear probes on builtin:shapes' masks."
        if self.work:
            text += f" Now: {self.work}."
        if best is not None:
            text += f" Best: {best[1]} at t={best[0]}, mIoU {percent(best[2])}."
        self.heatmap.set_status(text)
