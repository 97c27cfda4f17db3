"""The one feature-extraction path every evaluation uses: augment, noise, one forward pass, pool.

Batches come from uint8 images on the CPU; augmentation (flip, padded crop) and noise are drawn from
generators seeded per batch, so a pass is reproducible, and two passes with different seeds give the
independent noise draws that alignment needs. On a CPU a whole-split pass can also run as several streams
of one torch thread each (`streams`): a small network's many small operations keep 2 cores busier that
way than split across both (8-12% more images/s for tiny-ddpm: `python -m bench.features`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import torch
import torch.nn.functional as F

from .. import data as datasets
from ..cpu_threads import one_torch_thread
from ..errors import Stopped as Stopped  # where every evaluation has imported it from
from ..model import DDAEModel


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed & 0x7FFF_FFFF_FFFF)


TimestepSpec = int | Callable[[int, torch.Generator], torch.Tensor]


def _batch_features(model: DDAEModel, images: torch.Tensor, index: torch.Tensor, batch_index: int,
                    timesteps: Sequence[TimestepSpec], layers: Sequence[str], *, flip: bool, crop_padding: int,
                    seed: int, normalize: bool, tokens: int = 0) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """One batch: augmented once, then a noise draw and a forward pass per timestep entry.

    `tokens` > 0: each tap as (B, S, C) spatial tokens, average-pooled to at most tokens x tokens, not mean-pooled.

    Everything random comes from a generator seeded by (seed, batch_index), so a batch's features do not
    depend on which thread computes it or in what order.
    """
    device = model.device
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
            noise = torch.randn(model.noise_shape_of(batch), generator=gen, device=device)
            feats = model.features(batch, t, layers, noise=noise, normalize=normalize, pool=not tokens)
            if tokens:
                feats = {name: token_map(value, tokens) for name, value in feats.items()}
            results.append((t, feats))
    return results


def token_map(act: torch.Tensor, side: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, S, C) tokens, average-pooled to at most side x side (a smaller map stays as it is)."""
    if act.shape[2] > side or act.shape[3] > side:
        act = F.adaptive_avg_pool2d(act, (min(side, act.shape[2]), min(side, act.shape[3])))
    return act.flatten(2).transpose(1, 2).contiguous()


def feature_batches(model: DDAEModel, images: torch.Tensor, timesteps: Sequence[TimestepSpec],
                    layers: Sequence[str], *, batch_size: int = 256, order: torch.Tensor | None = None,
                    flip: bool = False, crop_padding: int = 0, seed: int = 0, normalize: bool = False,
                    stop: Callable[[], bool] | None = None, tokens: int = 0, only: Collection[int] | None = None
                    ) -> Iterator[tuple[torch.Tensor, list[tuple[torch.Tensor, dict[str, torch.Tensor]]]]]:
    """Yield (indices, [(timesteps (B,), {layer: (B, C) pooled float32}) per entry of `timesteps`]).

    Each batch is augmented once; every timestep entry then gets its own noise draw and forward pass.
    `tokens` > 0: unpooled taps as (B, S, C) tokens instead (token_map).
    A timestep entry is an int, or a function (batch size, generator) -> (B,) timesteps drawn per image.
    `order` picks and orders the images (default: all, in order); `only`: just these batch indices, each drawn
    as in the whole pass. Raises Stopped when `stop()` turns true.
    """
    order = torch.arange(len(images)) if order is None else order
    for batch_index, start in enumerate(range(0, len(order), batch_size)):
        if only is not None and batch_index not in only:
            continue
        if stop is not None and stop():
            raise Stopped
        index = order[start:start + batch_size]
        yield index, _batch_features(model, images, index, batch_index, timesteps, layers, flip=flip,
                                     crop_padding=crop_padding, seed=seed, normalize=normalize, tokens=tokens)


def _stream_batches(model: DDAEModel, images: torch.Tensor, timestep: int, layers: Sequence[str], *,
                    batch_size: int, streams: int, stop: Callable[[], bool] | None,
                    only: Collection[int] | None = None, **kw
                    ) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """(indices, pooled features) per batch, computed by `streams` threads of one torch thread each.

    Yields in completion order. At most two batches per stream are in flight, so a stop lands quickly and
    memory stays that of a few batches.
    """
    plan = iter([(b, start) for b, start in enumerate(range(0, len(images), batch_size)) if only is None or b in only])
    pending: dict[Future, torch.Tensor] = {}

    def submit_next(pool: ThreadPoolExecutor) -> None:
        if stop is not None and stop():
            raise Stopped
        batch_index, start = next(plan, (-1, 0))
        if batch_index >= 0:
            index = torch.arange(start, min(start + batch_size, len(images)))
            pending[pool.submit(_batch_features, model, images, index, batch_index, [timestep], layers, **kw)] = index

    with one_torch_thread(), ThreadPoolExecutor(streams, thread_name_prefix="extract") as pool:
        try:
            for _ in range(2 * streams):
                submit_next(pool)
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = pending.pop(future)
                    [(_, feats)] = future.result()
                    yield index, feats
                    submit_next(pool)
        finally:
            for future in pending:
                future.cancel()


def extract_features(model: DDAEModel, images: torch.Tensor, timestep: int, layers: Sequence[str], *,
                     batch_size: int = 256, flip: bool = False, crop_padding: int = 0, seed: int = 0,
                     normalize: bool = False, stop: Callable[[], bool] | None = None,
                     on_progress: Callable[[int, int], None] | None = None,
                     dtype: torch.dtype = torch.float32, streams: int = 1, only: Collection[int] | None = None,
                     into: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Pooled features of every image at one timestep: {layer: (N, C)} on the CPU, in image order.

    `only`: just the images of these batch indices (of `batch_size`), each batch drawn exactly as in the whole
    pass, written into `into` (a dict as this returns) where given: a pass in parts is the whole pass, bit for bit.

    `streams` > 1 (CPU only, see device.extraction_streams): that many threads of one torch thread each
    take batches in turn; each batch draws its own augmentation and noise, so the features are those of one
    stream up to the last bits of floating-point summation order.
    """
    layers = model.net.order_taps(layers)
    n = len(images)
    out = into if into is not None else \
        {name: torch.empty(n, model.net.tap_channels[name], dtype=dtype) for name in layers}
    options: dict[str, Any] = dict(flip=flip, crop_padding=crop_padding, seed=seed, normalize=normalize, only=only)
    if streams > 1 and model.device.type == "cpu":
        batches = _stream_batches(model, images, timestep, layers, batch_size=batch_size, streams=streams,
                                  stop=stop, **options)
    else:
        batches = ((index, feats) for index, [(_, feats)] in
                   feature_batches(model, images, [timestep], layers, batch_size=batch_size, stop=stop, **options))
    done = 0
    for index, feats in batches:
        for name, value in feats.items():
            out[name][index] = value.to("cpu", dtype)
        done += len(index)
        if on_progress is not None:
            on_progress(done, n)
    return out
