"""The one feature-extraction path every evaluation uses: augment, noise, one forward pass, pool.

Batches come from uint8 images on the CPU; augmentation (flip, padded crop) and noise are drawn from
generators seeded per batch, so a pass is reproducible, and two passes with different seeds give the
independent noise draws that alignment needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from .. import data as datasets
from ..model import DDAEModel


class Stopped(Exception):
    """A stop was requested in the middle of an extraction."""


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed & 0x7FFF_FFFF_FFFF)


TimestepSpec = int | Callable[[int, torch.Generator], torch.Tensor]


def feature_batches(model: DDAEModel, images: torch.Tensor, timesteps: Sequence[TimestepSpec],
                    layers: Sequence[str], *, batch_size: int = 256, order: torch.Tensor | None = None,
                    flip: bool = False, crop_padding: int = 0, seed: int = 0, normalize: bool = False,
                    stop: Callable[[], bool] | None = None
                    ) -> Iterator[tuple[torch.Tensor, list[tuple[torch.Tensor, dict[str, torch.Tensor]]]]]:
    """Yield (indices, [(timesteps (B,), {layer: (B, C) pooled float32}) per entry of `timesteps`]).

    Each batch is augmented once; every timestep entry then gets its own noise draw and forward pass.
    A timestep entry is an int, or a function (batch size, generator) -> (B,) timesteps drawn per image.
    `order` picks and orders the images (default: all, in order). Raises Stopped when `stop()` turns true.
    """
    device = model.device
    order = torch.arange(len(images)) if order is None else order
    for batch_index, start in enumerate(range(0, len(order), batch_size)):
        if stop is not None and stop():
            raise Stopped
        index = order[start:start + batch_size]
        gen = _generator(device, seed * 1_000_003 + batch_index)
        results = []
        with torch.no_grad():  # not inference_mode: heads train on these features afterwards
            batch = datasets.augment_batch(images[index].to(device, non_blocking=True), flip=flip,
                                           crop_padding=crop_padding, generator=gen)
            for timestep in timesteps:
                if callable(timestep):
                    t = timestep(len(index), gen).to(device)
                else:
                    t = torch.full((len(index),), int(timestep), device=device, dtype=torch.long)
                noise = torch.randn(batch.shape, generator=gen, device=device)
                results.append((t, model.features(batch, t, layers, noise=noise, normalize=normalize)))
        yield index, results


def extract_features(model: DDAEModel, images: torch.Tensor, timestep: int, layers: Sequence[str], *,
                     batch_size: int = 256, flip: bool = False, crop_padding: int = 0, seed: int = 0,
                     normalize: bool = False, stop: Callable[[], bool] | None = None,
                     on_progress: Callable[[int, int], None] | None = None,
                     dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Pooled features of every image at one timestep: {layer: (N, C)} on the CPU, in image order."""
    layers = model.net.order_taps(layers)
    n = len(images)
    out = {name: torch.empty(n, model.net.tap_channels[name], dtype=dtype) for name in layers}
    done = 0
    for index, [(_, feats)] in feature_batches(model, images, [timestep], layers, batch_size=batch_size, flip=flip,
                                               crop_padding=crop_padding, seed=seed, normalize=normalize, stop=stop):
        for name, value in feats.items():
            out[name][index] = value.to("cpu", dtype)
        done += len(index)
        if on_progress is not None:
            on_progress(done, n)
    return out
