"""The instant grid: a fast grid's k-NN cells, from the features it has just cached, before any head is trained.

Once a fast (or standardised, or aggregate) grid has extracted every noise level, a cosine k-NN vote (knn.py,
k=20, T=0.07) over the same cached training features (the first augmented view) fills every cell at once: one
batched matrix product per noise level, a fraction of a second beside the heads' training. The cells are written
to knn_grid.json at once (an artifact event, so a live view shows them while the heads train) and into grid.json
under "knn" at the end; the linear cells then replace them row by row on the heatmap.
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch

from ...rundir import KNN_GRID, ArtifactKind, atomic_write_text
from .knn import TEMPERATURE, K, knn_grid_accuracy
from .report import best_cell

LABEL = "k-NN"
TRAIN_FEATURES = "the grid's cached training features (first augmented view)"


def stack(feats: dict[str, torch.Tensor], layers: list[str], width: int) -> torch.Tensor:
    """{layer: (N, C_l)} -> (L, N, width), zero-padded."""
    n = len(feats[layers[0]])
    out = torch.zeros(len(layers), n, width)
    for i, name in enumerate(layers):
        out[i, :, : feats[name].shape[1]] = feats[name]
    return out


def knn_of_cache(grid, preview: dict | None = None) -> dict:
    """Every cell's k-NN accuracy over `grid.caches` (t -> (L, V*N, C_max)); written to knn_grid.json at once.

    `preview`: the preview's cells (preview.py) this grid replaces, kept under "preview_grid".
    """
    started = time.perf_counter()
    n, width = len(grid.train), max(grid.channels)
    cells: dict[int, dict[str, float]] = {}
    held: dict[int, dict[str, float]] = {}
    for t in grid.timesteps:
        cache = grid.caches[t]
        evaluation = grid.evaluation_features(t)
        # A cache spilled to disk (over the memory budget) is read one layer at a time, else the whole row at once.
        groups = [slice(i, i + 1) for i in range(len(grid.layers))] if isinstance(cache, np.ndarray) \
            else [slice(0, len(grid.layers))]
        for group in groups:
            train = cache[group, :n]
            train = torch.from_numpy(np.ascontiguousarray(train)) if isinstance(train, np.ndarray) else train
            train = train.to(grid.work_device)
            for split, data, out in (("test", grid.test, cells), ("held", grid.held, held)):
                if data is not None:
                    test = stack(evaluation[split], grid.layers, width)[group]
                    accuracy = knn_grid_accuracy(train, grid.train.labels, test, data.labels, num_classes=grid.classes)
                    out.setdefault(t, {}).update(zip(grid.layers[group], accuracy))
    # The best k-NN cell is chosen as the grid's own: on the held-out images where it has them.
    chosen = best_cell(grid.timesteps, grid.layers, held or cells)
    result = {
        "label": LABEL, "k": K, "temperature": TEMPERATURE, "train_features": TRAIN_FEATURES,
        "timesteps": grid.timesteps, "layers": grid.layers,
        "accuracy": {str(t): row for t, row in cells.items()},
        "held_out_accuracy": {str(t): row for t, row in held.items()} if held else None,
        "best": None if chosen is None else {"timestep": chosen[0], "layer": chosen[1],
                                             "accuracy": cells[chosen[0]][chosen[1]]},
        "seconds": round(time.perf_counter() - started, 3),
        "preview_grid": preview,
    }
    write_knn(grid, result)
    return result


def write_knn(grid, result: dict) -> None:
    """knn_grid.json, and its artifact event (a live view reads it at once)."""
    atomic_write_text(grid.ctx.run_dir / KNN_GRID, json.dumps(result, indent=1))
    grid.ctx.reporter.artifact(ArtifactKind.FILE, grid.ctx.run_dir / KNN_GRID)

