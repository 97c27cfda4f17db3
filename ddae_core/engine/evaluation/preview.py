"""The k-NN preview: a whole k-NN heatmap from a subset of the images, long before the full extraction ends.

On a CPU a fast grid's time is almost all extraction, so the instant grid (instant.py) cannot come sooner than
the features it needs. The preview extracts first, at every noise level, a subset of the training images (the
first augmented view: what the k-NN cells use) and of the test images, fills every cell by the same k-NN vote
over those, and writes knn_grid.json with `preview: {train_images, test_images, ...}` and a 95% Wilson
interval per cell from the test subset's size. The rest of each split is then extracted and the full k-NN
grid replaces the preview; the linear heads replace that as today.

No image is extracted twice, and the final cache is today's bit for bit: each batch's augmentation and noise are
seeded by its position in the whole pass (features.py), so the subset is made of whole extraction batches,
computed exactly as the whole pass computes them, and the rest of the pass skips them. The batches are spread
evenly over the split (`knn_preview` percent of it, at most CAP_PER_CLASS images a class), then more are added
until every class has 2k training images (or all it has); a preview that would need over half of the training
split is not made. The test subset is as many test images, spread the same way. The preview's best cell is the
best on its test subset (no held-out images are extracted for it). `--protocol knn` has no preview: its cells
already come a noise level's row at a time, as each clean training pass ends.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from .certainty import wilson_interval
from .instant import LABEL, TRAIN_FEATURES, stack, write_knn
from .knn import TEMPERATURE, K, knn_grid_accuracy
from .report import best_cell

CAP_PER_CLASS = 300         # "about 10%, capped to a few hundred a class"
MIN_PER_CLASS = 2 * K       # every class has at least 2k neighbours to vote


def spread(batches: int, wanted: int) -> list[int]:
    """`wanted` batch indices of `batches`, evenly spaced from the first."""
    wanted = max(0, min(batches, wanted))
    return sorted({int(i * batches / wanted) for i in range(wanted)}) if wanted else []


def batch_rows(batches: list[int], batch_size: int, n: int) -> torch.Tensor:
    """The image indices of these batches of a pass over n images, in order."""
    rows = [torch.arange(b * batch_size, min((b + 1) * batch_size, n)) for b in sorted(batches)]
    return torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)


def training_batches(labels: torch.Tensor, batch_size: int, percent: int, classes: int) -> list[int] | None:
    """The preview's training batches (see the module), or None where a preview would not be worth it."""
    n = len(labels)
    total = math.ceil(n / batch_size)
    target = min(math.ceil(n * percent / 100), CAP_PER_CLASS * classes)
    chosen = set(spread(total, max(1, round(target / batch_size))))
    per_batch = [torch.bincount(labels[b * batch_size:(b + 1) * batch_size].long(), minlength=classes)
                 for b in range(total)]
    need = torch.minimum(torch.bincount(labels.long(), minlength=classes), torch.tensor(MIN_PER_CLASS))
    have = sum((per_batch[b] for b in chosen), torch.zeros(classes, dtype=torch.long))
    while (have < need).any():
        short = (need - have).clamp(min=0)
        gain, best = max((int(torch.minimum(per_batch[b], short).sum()), -b) for b in range(total) if b not in chosen)
        chosen.add(-best)
        have += per_batch[-best]
    if len(batch_rows(sorted(chosen), batch_size, n)) * 2 > n:
        return None
    return sorted(chosen)


@dataclass
class Preview:
    """Which batches the preview extracts, and (per timestep) their features, only their rows."""

    batch_size: int
    train_batches: list[int]
    test_batches: list[int]
    train_rows: torch.Tensor
    test_rows: torch.Tensor
    train: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    test: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)

    def rest(self, split: str, n: int) -> set[int]:
        """The batch indices of the whole pass the preview did not extract."""
        done = self.train_batches if split == "train" else self.test_batches
        return set(range(math.ceil(n / self.batch_size))) - set(done)

    def whole(self, split: str, t: int, n: int) -> dict[str, torch.Tensor]:
        """{layer: (n, C)} with the preview's rows filled in: what the rest of the pass is written into."""
        feats, rows = (self.train, self.train_rows) if split == "train" else (self.test, self.test_rows)
        out = {}
        for name, value in feats[t].items():
            out[name] = torch.empty(n, value.shape[1], dtype=value.dtype)
            out[name][rows] = value
        return out


def plan(grid) -> Preview | None:
    """The preview of a fast grid (ProbeGrid), or None when its `knn_preview` is 0 or a preview would not pay."""
    percent = grid.options.knn_preview
    if not percent:
        return None
    size = grid.extract_batch
    train = training_batches(grid.train.labels, size, percent, grid.classes)
    if train is None:
        return None
    train_rows = batch_rows(train, size, len(grid.train))
    test = spread(math.ceil(len(grid.test) / size), math.ceil(len(train_rows) / size))
    return Preview(size, train, test, train_rows, batch_rows(test, size, len(grid.test)))


def extract(grid, preview: Preview, t: int, seeds: tuple[int, int], progress) -> None:
    """The preview's training (first view: seeds[0]) and test (seeds[1]) features at t, only its rows kept."""
    kw = dict(batch_size=preview.batch_size, stop=grid.ctx.stopped, on_progress=progress)
    train = grid.source.extract(grid.train.images, t, flip=True, crop_padding=4, seed=seeds[0],
                                only=set(preview.train_batches), **kw)
    preview.train[t] = {name: value[preview.train_rows].clone() for name, value in train.items()}
    test = grid.source.extract(grid.test.images, t, seed=seeds[1], only=set(preview.test_batches), **kw)
    preview.test[t] = {name: value[preview.test_rows].clone() for name, value in test.items()}


def knn_preview(grid, preview: Preview) -> dict:
    """Every cell's k-NN accuracy over the preview's features, with its 95% interval; written to knn_grid.json."""
    started = time.perf_counter()
    width = max(grid.channels)
    train_labels, test_labels = grid.train.labels[preview.train_rows], grid.test.labels[preview.test_rows]
    n_test = len(preview.test_rows)
    cells: dict[int, dict[str, float]] = {}
    for t in grid.timesteps:
        train = stack(preview.train[t], grid.layers, width).to(grid.work_device)
        test = stack(preview.test[t], grid.layers, width)
        cells[t] = dict(zip(grid.layers, knn_grid_accuracy(train, train_labels, test, test_labels,
                                                           num_classes=grid.classes)))
    chosen = best_cell(grid.timesteps, grid.layers, cells)
    result = {
        "label": LABEL, "k": K, "temperature": TEMPERATURE, "train_features": TRAIN_FEATURES,
        "timesteps": grid.timesteps, "layers": grid.layers,
        "accuracy": {str(t): row for t, row in cells.items()},
        "interval": {str(t): {name: list(wilson_interval(acc, n_test)) for name, acc in row.items()}
                     for t, row in cells.items()},
        "held_out_accuracy": None,
        "best": None if chosen is None else {"timestep": chosen[0], "layer": chosen[1], "accuracy": chosen[2]},
        "preview": {"train_images": len(preview.train_rows), "test_images": n_test,
                    "batch_size": preview.batch_size, "train_batches": preview.train_batches,
                    "test_batches": preview.test_batches},
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_knn(grid, result)
    return result


def preview_words(knn: dict | None) -> str:
    """'k-NN preview (400 train / 416 test images)' for a preview's knn_grid.json, '' for a full one."""
    preview = (knn or {}).get("preview")
    if not isinstance(preview, dict):
        return ""
    return f"k-NN preview ({int(preview.get('train_images', 0)):,} train / {int(preview.get('test_images', 0)):,} " \
           f"test images)"
