"""Batches of a latent cache for a probe, as the official `DiT/linear.py` reads its latent codes.

Training: a shuffled epoch of the training split where each item comes from one of the K augmented copies,
drawn at random per item (its `LatentCodeDataset.__getitem__`); evaluation: the un-augmented test copy in
order. Batches are read from the fp16 memory maps and returned as float32 tensors on the CPU.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..data import BatchSampler
from .cache import LatentCache


class LatentReader:
    """Seeded, resumable batches of one cache: epoch e's order and copies depend only on (seed, e)."""

    def __init__(self, cache: LatentCache, batch_size: int, seed: int = 0):
        self.cache = cache
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.sampler = BatchSampler(len(cache.train_labels), self.batch_size, self.seed)

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch

    def train_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(float32 latents (B, C, h, w), int64 labels) of global step `step`, each item a random copy."""
        index = self.sampler.batch(step).numpy()
        rng = np.random.default_rng([self.seed, 0x1A7E, step])
        copy = rng.integers(0, self.cache.copies, size=len(index))
        return self.train_items(index, copy)

    def train_items(self, index: np.ndarray, copy: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Items `index` of the training split, item i from augmented copy copy[i]."""
        order = np.lexsort((index, copy))           # read each copy's rows front to back
        codes = np.empty((len(index), *self.cache.latent_shape), dtype=np.float32)
        codes[order] = self.cache.train_codes[copy[order], index[order]]
        return torch.from_numpy(codes), self.cache.train_labels[torch.from_numpy(index)]

    def train_epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        first = epoch * self.steps_per_epoch
        for step in range(first, first + self.steps_per_epoch):
            yield self.train_batch(step)

    def test_batches(self, batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The test copy in order, float32 latents and int64 labels."""
        size = batch_size or self.batch_size
        for start in range(0, len(self.cache.test_labels), size):
            codes = np.asarray(self.cache.test_codes[start:start + size], dtype=np.float32)
            yield torch.from_numpy(codes), self.cache.test_labels[start:start + size]
