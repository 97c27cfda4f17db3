"""The layer x noise linear-probe grid (ddae-spec 6), in three protocols (see protocols.py), with baselines.

- official: every epoch re-augments (flip + 4-pixel padded crop) and re-noises every batch, one forward
  pass per (batch, timestep) feeding all layers' heads; final-epoch accuracy on one noisy test pass.
- fast: per timestep, extract every layer once per augmented view, cache the pooled features (in
  memory, or in a file when larger than the memory budget), and train all heads of that timestep
  together on the cache with the same optimiser, schedule and number of steps. Each timestep's row
  of cells is reported as soon as it is trained.
- standardized (not the official protocol): fast, with each head seeing its features at zero mean and
  unit variance over the cached training views, as MAE-style probes do with a non-affine BatchNorm; the
  statistics are folded into the saved head, so the head still applies to raw features.
- knn (no training): every cell by cosine k-NN (knn.py) over the pooled features of one unaugmented pass of
  the training images, at the same test pass; no head is saved.

The best cell, the grid's headline, is chosen on a held-out part of the training images where the split
allows (certainty.selection_holdout), and quoted with its test accuracy; grid.json says which selection was made.

Unless the job says `baselines: false`, the same heads with the same protocol are also trained on raw
pixels and on the network at a fixed random initialisation (sources.py): a grid's numbers mean what
they stand above those two (measured by probe_job.py, the job around the grid, which also writes grid.json
and the heads).
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import psutil
import torch

from ..data import ImageData
from ..device import extraction_batch_size
from ..spec.options import ProbeOptions
from .aggregate import aggregate_cells
from .attentive import run_attentive
from .certainty import SELECTED_ON_HELD_OUT, SELECTED_ON_TEST, selection_holdout
from .common import EvalContext
from .features import Stopped
from .heads import ProbeHeads, ProbeTrainer, fold_standardization, standardization
from .instant import knn_of_cache
from .knn import knn_accuracy
from .preview import Preview, extract as extract_preview, knn_preview, plan as plan_preview
from .report import best_cell
from .sources import NetworkSource

log = logging.getLogger(__name__)

HEADS_FORMAT = "ddae-probe-heads"
OFFICIAL_PROTOCOLS = ("official", "dit-official")    # one head per cell on re-drawn batches (dit_probe.py: latents)


def _seed(*parts: int) -> int:
    value = 0
    for p in parts:
        value = (value * 1_000_003 + int(p)) & 0x7FFF_FFFF
    return value


class ProbeGrid:
    """One layer x noise grid of probe heads over a feature source (the network, or a baseline's).

    `emit`: report cells as grid_cell events (the grid itself); a baseline's grid keeps its cells to itself.
    `data`: (train, test, held-out or None) splits already loaded (and split) by another grid of the same job.
    """

    def __init__(self, ctx: EvalContext, source=None, timesteps: list[int] | None = None, emit: bool = True,
                 data=None, stage: str = ""):
        self.ctx = ctx
        self.options: ProbeOptions = ctx.opts
        o = self.options
        self.model = ctx.model
        # The fast protocols extract at the device's fastest precision (the job's `amp`, `auto` unless set);
        # the official protocol, the reference, runs the model as the job loaded it (fp32 on a CPU).
        self.precision = None if o.protocol in OFFICIAL_PROTOCOLS else str(o.amp or "auto")
        self.source = source or NetworkSource(ctx.model, o.layers, self.precision)
        self.timesteps: list[int] = [int(t) for t in (o.timesteps if timesteps is None else timesteps)]
        self.layers: list[str] = list(self.source.layers)
        self.channels = list(self.source.channels)
        self.epochs, self.batch_size, self.lr = o.epochs, o.batch_size, o.lr
        # Forward-only batches: the official protocol's test pass keeps 128 on a CPU (its noise is drawn per
        # batch, so its numbers stay those of earlier runs); the fast protocols take the device's fastest.
        default_batch = (128 if ctx.device.type == "cpu" else 512) if self.precision is None \
            else extraction_batch_size(ctx.device)
        self.extract_batch = o.extract_batch_size or default_batch
        self.train, self.test, self.held = data or self._load_data()
        self.classes = len(self.train.classes)
        self.cells: dict[int, dict[str, float]] = {}
        self.held_cells: dict[int, dict[str, float]] = {}      # accuracy on the held-out training images
        self.heads: dict[str, dict[str, torch.Tensor]] = {}
        self.work_device = ctx.device
        # The aggregate protocol's cells are standardised heads, as the mixture's cells are standardised features;
        # the attentive protocol standardises its tokens, and its raw-pixel baseline is a standardised head too.
        self.standardize = o.protocol in ("standardized", "aggregate", "attentive")
        self.emit, self.stage = emit, stage
        self.caches: dict = {}          # t -> the fast protocols' cached training features (L, V*N, C_max)
        self.eval_feats: dict[int, dict[str, dict[str, torch.Tensor]]] = {}
        self.knn_grid: dict | None = None     # the fast protocols' k-NN cells (instant.py), once extracted
        self.preview: Preview | None = None   # the k-NN preview's subsets and features (preview.py), while extracting
        self.aggregate: dict | None = None    # the aggregate protocol's mixture (aggregate.py)
        self.aggregate_head = None

    def _load_data(self) -> tuple[ImageData, ImageData, ImageData | None]:
        """(train, test, held-out): the held-out images, a fixed draw from the training split, train no head."""
        o = self.options
        train, test = self.ctx.data("train", o.train_limit), self.ctx.data("test", o.test_limit)
        held = selection_holdout(len(train), o.holdout)
        if not held:
            return train, test, None
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(HOLDOUT_SEED))
        return _subset(train, order[held:]), test, _subset(train, order[:held])

    # Shared steps.
    def _progress(self, done: int, total: int, stage: str) -> None:
        self.ctx.reporter.progress(done, total, self.stage + stage)

    def features(self, data: ImageData, t: int, seed: int, on_progress=None, **part) -> dict[str, torch.Tensor]:
        """{layer: (N, C)} of `data` at t: one seeded noise draw, no augmentation (`part`: only=, into=)."""
        return self.source.extract(data.images, t, batch_size=self.extract_batch, seed=seed, stop=self.ctx.stopped,
                                   on_progress=on_progress, **part)

    def accuracy(self, heads: ProbeHeads, data: ImageData, feats: dict[str, torch.Tensor]) -> list[float]:
        """Each head's accuracy on `data`, whose features (at the head's t) are `feats`."""
        stacked = heads.stack([feats[name] for name in self.layers]).to(self.work_device)
        labels = data.labels.to(self.work_device)
        correct = torch.zeros(len(self.layers), dtype=torch.long, device=self.work_device)
        for start in range(0, stacked.shape[1], 4096):
            correct += heads.correct(stacked[:, start:start + 4096], labels[start:start + 4096])
        return (correct.float() / len(labels)).tolist()

    def finish_row(self, t: int, heads: ProbeHeads) -> None:
        feats = self.evaluation_features(t)
        accuracy = self.accuracy(heads, self.test, feats["test"])
        if self.held is not None:
            self.held_cells[t] = dict(zip(self.layers, self.accuracy(heads, self.held, feats["held"])))
        self.cells[t] = {}
        for name, acc, state in zip(self.layers, accuracy, heads.export()):
            self.cells[t][name] = acc
            self.heads[f"{t}/{name}"] = state
            if self.emit:
                self.ctx.reporter.grid_cell(name, t, acc)

    def seed_for(self, *parts: int) -> int:
        """A seed derived from the job's seed and `parts` (noise draws, orders, initialisations)."""
        return _seed(self.ctx.seed, *parts)

    def generator(self, *parts: int) -> torch.Generator:
        """A CPU generator seeded by seed_for(*parts) (heads' initialisations)."""
        return torch.Generator().manual_seed(self.seed_for(*parts))

    def new_heads(self, t: int, channels: list[int]) -> tuple[ProbeHeads, ProbeTrainer]:
        gen = torch.Generator().manual_seed(_seed(self.ctx.seed, 29, t))
        heads = ProbeHeads(channels, self.classes, generator=gen).to(self.work_device)
        return heads, ProbeTrainer(heads, self.lr, self.epochs)

    def epoch_order(self, epoch: int) -> torch.Tensor:
        return torch.randperm(len(self.train), generator=torch.Generator().manual_seed(_seed(self.ctx.seed, 31, epoch)))

    def run(self) -> None:
        """Train and test every cell with the job's protocol (standardized is the fast one on scaled features)."""
        if self.options.protocol in OFFICIAL_PROTOCOLS:
            self.run_official()
        elif self.options.protocol == "knn":
            self.run_knn()
        elif self.options.protocol == "attentive" and isinstance(self.source, NetworkSource):
            run_attentive(self)
        else:
            self.run_fast()

    # Official protocol.
    def run_official(self) -> None:
        pairs = [self.new_heads(t, self.channels) for t in self.timesteps]
        labels = self.train.labels
        steps_per_epoch = math.ceil(len(self.train) / self.batch_size)
        for epoch in range(self.epochs):
            for _, trainer in pairs:
                trainer.set_epoch(epoch)
            batches = self.source.batches(self.train.images, self.timesteps, batch_size=self.batch_size,
                                          order=self.epoch_order(epoch), flip=True, crop_padding=4,
                                          seed=_seed(self.ctx.seed, 37, epoch), stop=self.ctx.stopped)
            for i, (index, results) in enumerate(batches):
                y = labels[index].to(self.work_device)
                for (_, feats), (heads, trainer) in zip(results, pairs):
                    trainer.step(heads.stack([feats[name] for name in self.layers]), y)
                self._progress(epoch * steps_per_epoch + i + 1, self.epochs * steps_per_epoch, "probe (official)")
        for t, (heads, _) in zip(self.timesteps, pairs):
            self.finish_row(t, heads)

    # k-NN protocol: the test (and held-out) pass of the other protocols, against one clean training pass.
    def run_knn(self) -> None:
        n, total = len(self.train), len(self.timesteps) * len(self.train)
        for row, t in enumerate(self.timesteps):
            def progress(done: int, _n: int, row=row, t=t) -> None:
                self._progress(row * n + done, total, f"extract t={t}")
            train = self.features(self.train, t, knn_train_seed(self.ctx.seed, t), progress)
            evaluation = self.evaluation_features(t)
            for split, data, cells in (("test", self.test, self.cells), ("held", self.held, self.held_cells)):
                if data is not None:
                    feats = evaluation[split]
                    cells[t] = {name: self.knn(train[name], feats[name], data.labels) for name in self.layers}
            if self.emit:
                for name, acc in self.cells[t].items():
                    self.ctx.reporter.grid_cell(name, t, acc)

    def knn(self, train: torch.Tensor, test: torch.Tensor, labels: torch.Tensor) -> float:
        return knn_accuracy(train.to(self.work_device), self.train.labels, test, labels, num_classes=self.classes)

    # Fast protocol: every noise level's features are extracted and cached first, so the k-NN cells
    # (instant.py) fill the whole grid before any head is trained; the heads then replace them row by row.
    # Before that, a preview subset of every noise level (preview.py) gives a whole k-NN heatmap sooner.
    def run_fast(self) -> None:
        views = self.options.views
        n, c_max = len(self.train), max(self.channels)
        row_bytes = views * n * c_max * 4
        budget_mb = self.options.cache_memory_mb
        if budget_mb is None:
            budget_mb = min(4096, psutil.virtual_memory().available / 4 / 2**20)
        budget = int(budget_mb * 2**20)
        layers_per_group = max(1, min(len(self.layers), budget // max(row_bytes, 1)))
        spill = layers_per_group < len(self.layers) or row_bytes * len(self.timesteps) > budget
        spill_dir = Path(tempfile.mkdtemp(prefix="probe-cache-", dir=self.ctx.run_dir)) if spill else None
        try:
            knn_preview = self._preview() if self.emit else None
            for row, t in enumerate(self.timesteps):
                self.caches[t] = self._extract_views(t, views, row, spill_dir)
                self.evaluation_features(t)
            self.preview = None
            if self.emit:
                self.knn_grid = knn_of_cache(self, knn_preview)
            for t in self.timesteps:
                cache = self.caches[t]
                heads_all = []
                for g in range(0, len(self.layers), layers_per_group):
                    group = slice(g, g + layers_per_group)
                    heads, trainer = self.new_heads(t, self.channels[group])
                    block = cache[group, :, : heads.c_max]
                    block = torch.from_numpy(np.ascontiguousarray(block)) if spill else block
                    block = block.to(self.work_device)
                    if self.standardize:
                        mean, std = standardization(block)
                        self._train_cached(heads, trainer, (block - mean[:, None]) / std[:, None], n, views)
                        fold_standardization(heads, mean, std)
                    else:
                        self._train_cached(heads, trainer, block, n, views)
                    heads_all.append(heads)
                self.finish_row(t, _concat_heads(heads_all, self.channels, self.classes))
            if self.options.protocol == "aggregate" and self.emit:
                self.aggregate = aggregate_cells(self)
        finally:
            self.caches.clear()
            self.preview = None
            if spill_dir is not None:
                shutil.rmtree(spill_dir, ignore_errors=True)

    def _preview(self) -> dict | None:
        """The k-NN preview's subsets extracted at every noise level and their cells written (None: no preview)."""
        self.preview = preview = plan_preview(self)
        if preview is None:
            return None
        total, done = len(self.timesteps) * (len(preview.train_rows) + len(preview.test_rows)), 0
        for t in self.timesteps:
            def progress(count: int, _n: int, t=t, base=done) -> None:
                self._progress(base + count, total, f"k-NN preview: extract t={t}")
            extract_preview(self, preview, t, (_seed(self.ctx.seed, 41, t, 0), _seed(self.ctx.seed, 17, t)),
                            progress)
            done += len(preview.train_rows) + len(preview.test_rows)
        return knn_preview(self, preview)

    def evaluation_features(self, t: int) -> dict[str, dict[str, torch.Tensor]]:
        """{"test" | "held": {layer: (N, C)}} at t, extracted once per grid (the k-NN cells and the heads share it);
        the test images the k-NN preview extracted are not extracted again."""
        if t not in self.eval_feats:
            preview = self.preview
            self.eval_feats[t] = {
                name: self.features(data, t, _seed(self.ctx.seed, seed, t),
                                    **({} if preview is None or name != "test" else
                                       {"only": preview.rest("test", len(data)),
                                        "into": preview.whole("test", t, len(data))}))
                for name, data, seed in (("test", self.test, 17), ("held", self.held, 19)) if data is not None}
        return self.eval_feats[t]

    def _extract_views(self, t: int, views: int, row: int, spill_dir: Path | None):
        n, c_max = len(self.train), max(self.channels)
        shape = (len(self.layers), views * n, c_max)
        if spill_dir is not None:
            cache = np.lib.format.open_memmap(spill_dir / f"t{t}.npy", mode="w+", dtype=np.float32, shape=shape)
        else:
            cache = torch.zeros(shape)
        total = len(self.timesteps) * views * n
        for v in range(views):
            # The first view's preview images (preview.py) are already extracted: only the rest of the pass runs.
            part = {} if self.preview is None or v else \
                {"only": self.preview.rest("train", n), "into": self.preview.whole("train", t, n)}
            skipped = len(self.preview.train_rows) if part and self.preview else 0

            def progress(done: int, _n: int, v=v, skipped=skipped) -> None:
                self._progress((row * views + v) * n + min(n, done + skipped), total, f"extract t={t}")
            feats = self.source.extract(self.train.images, t, batch_size=self.extract_batch, flip=True,
                                        crop_padding=4, seed=_seed(self.ctx.seed, 41, t, v),
                                        stop=self.ctx.stopped, on_progress=progress, **part)
            for i, name in enumerate(self.layers):
                value = feats[name]
                if spill_dir is not None:
                    cache[i, v * n:(v + 1) * n, : value.shape[1]] = value.numpy()
                else:
                    cache[i, v * n:(v + 1) * n, : value.shape[1]] = value
        return cache

    def _train_cached(self, heads: ProbeHeads, trainer: ProbeTrainer, block: torch.Tensor, n: int, views: int) -> None:
        labels = self.train.labels.to(self.work_device)
        for epoch in range(self.epochs):
            if self.ctx.stopped():
                raise Stopped
            trainer.set_epoch(epoch)
            # Epoch e reads view e mod V, in a fresh order: as many steps per epoch as the official protocol.
            order = self.epoch_order(epoch).to(self.work_device)
            offset = (epoch % views) * n
            for start in range(0, n, self.batch_size):
                index = order[start:start + self.batch_size]
                trainer.step(block[:, offset + index], labels[index])

    # Results.
    def best(self) -> tuple[int, str, float] | None:
        """(t, layer, test accuracy) of the cell chosen on the held-out images, or of the best on test without."""
        if self.held is None:
            return best_cell(self.timesteps, self.layers, self.cells)
        chosen = best_cell(self.timesteps, self.layers, self.held_cells)
        return None if chosen is None else (chosen[0], chosen[1], self.cells[chosen[0]][chosen[1]])

    def selection(self) -> dict:
        """grid.json's account of how the best cell was chosen."""
        if self.held is None:
            return {"on": SELECTED_ON_TEST}
        best = self.best()
        held = self.held_cells[best[0]][best[1]] if best else None
        return {"on": SELECTED_ON_HELD_OUT, "images": len(self.held), "accuracy": held}


def knn_train_seed(seed: int, t: int) -> int:
    """The noise seed of the k-NN protocol's training pass at t (the test pass's is _seed(seed, 17, t))."""
    return _seed(seed, 41, t, 0)


HOLDOUT_SEED = 20_231_107    # fixed, like the data seed: the held-out draw is the same for every run


def _subset(data: ImageData, index: torch.Tensor) -> ImageData:
    index = index.sort().values
    return replace(data, images=data.images[index].contiguous(), labels=data.labels[index])


def _concat_heads(groups: list[ProbeHeads], channels: list[int], classes: int) -> ProbeHeads:
    """Layer groups trained separately -> one ProbeHeads over all layers."""
    if len(groups) == 1:
        return groups[0]
    merged = ProbeHeads(channels, classes).to(groups[0].weight.device)
    with torch.no_grad():
        i = 0
        for g in groups:
            k = g.weight.shape[0]
            merged.weight[i:i + k, : g.c_max] = g.weight
            merged.weight[i:i + k, g.c_max:] = 0
            merged.bias[i:i + k] = g.bias
            i += k
    return merged
