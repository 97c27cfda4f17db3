"""Batching for training on uint8 tensors: resumable shuffled index batches and vectorised flip/crop."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def augment_batch(images: torch.Tensor, *, flip: bool, crop_padding: int = 0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 in [0, 1] on the same device, randomly flipped and/or cropped.

    flip: mirror each image left-right with probability 0.5.
    crop_padding: if > 0, pad each side with that many zero pixels and crop H x W back out at a uniform
        offset in 0..2*crop_padding per axis (torchvision's RandomCrop(H, padding)).
    generator: on the images' device, or None for the global one. The flips are drawn first, then the
        row offsets, then the column offsets, one number per image each.
    """
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"augment_batch wants uint8 (B, C, H, W) images, got {images.dtype} {tuple(images.shape)}")
    if crop_padding < 0:
        raise ValueError(f"crop_padding must be 0 or more, got {crop_padding}")
    b, _, h, w = images.shape
    device = images.device
    mirrored = torch.rand(b, generator=generator, device=device) < 0.5 if flip else None

    if crop_padding == 0:
        out = images if mirrored is None else torch.where(mirrored[:, None, None, None], images.flip(3), images)
        return out.float().div_(255)

    # One gather for crop and flip together: each image reads its own window of rows and columns of the
    # padded batch, with the column order reversed for mirrored images.
    p = crop_padding
    padded = F.pad(images, (p, p, p, p))
    top = torch.randint(0, 2 * p + 1, (b,), generator=generator, device=device)
    left = torch.randint(0, 2 * p + 1, (b,), generator=generator, device=device)
    rows = top[:, None] + torch.arange(h, device=device)
    cols = left[:, None] + torch.arange(w, device=device)
    if mirrored is not None:
        cols = torch.where(mirrored[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # advanced indices first: (B, H, W, C)
    return out.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format).div_(255)


class BatchSampler:
    """Deterministic, resumable shuffled batches of indices into a dataset of n items.

    Epoch e visits a permutation of range(n) drawn from numpy's PCG64 seeded with (seed, e); an epoch is
    ceil(n / batch_size) steps, the last batch short when batch_size does not divide n. batch(step)
    depends only on (n, batch_size, seed, step), so a run resumed at step k gets the batches it would
    have had.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0):
        if n < 1 or batch_size < 1:
            raise ValueError(f"BatchSampler needs n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        if seed < 0:
            raise ValueError(f"BatchSampler seed must be 0 or more, got {seed}")
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.steps_per_epoch = -(-self.n // self.batch_size)
        self._epoch: int | None = None
        self._order: torch.Tensor | None = None

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def _permutation(self, epoch: int) -> torch.Tensor:
        """The order of epoch `epoch`, int64 (n,); the latest one is kept, since steps go epoch by epoch."""
        if self._epoch != epoch or self._order is None:
            rng = np.random.default_rng([self.seed, epoch])
            self._order = torch.from_numpy(rng.permutation(self.n))
            self._epoch = epoch
        return self._order

    def batch(self, step: int) -> torch.Tensor:
        """int64 indices of global step `step` (0-based)."""
        if step < 0:
            raise ValueError(f"step must be 0 or more, got {step}")
        start = (step % self.steps_per_epoch) * self.batch_size
        # A copy, so a caller editing its batch cannot change the kept permutation.
        return self._permutation(self.epoch_of(step))[start:start + self.batch_size].clone()
