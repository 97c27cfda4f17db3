"""What a probe grid probes: a network's pooled taps, or the two baselines every grid is read against.

A source turns uint8 images into {layer: (N, C) float32} features, the same way for every protocol:
`extract` for one timestep over a whole split (the fast protocol's cache, the test pass), `batches` for
the official protocol's re-augmented epochs. Three sources share the one ProbeGrid:
- NetworkSource: a trained model's taps after noising to t and one forward pass (the grid itself);
- NetworkSource over `random_init_model()`: the same network at a fixed random initialisation;
- PixelSource: the (augmented) image itself, flattened, with no noise and no network.
A trained grid means something only by how far its best cell stands above the last two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from .. import data as datasets
from ..device import extraction_streams
from ..model import DDAEModel, to_model_range
from .features import Stopped, extract_features, feature_batches

PIXELS = "pixels"          # the one "layer" of the raw-pixel baseline
PIXEL_TIMESTEP = 0         # its one "noise level": clean images
RANDOM_INIT_SEED = 0       # the random-init baseline is the same network for every run of one config

Batches = Iterator[tuple[torch.Tensor, list[tuple[torch.Tensor, dict[str, torch.Tensor]]]]]


def random_init_model(model: DDAEModel, seed: int = RANDOM_INIT_SEED) -> DDAEModel:
    """The same config as `model`, freshly initialised from a fixed seed, on its device, in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = model.blank()
    fresh.amp_dtype = model.amp_dtype
    return fresh.to(model.device).eval()


class NetworkSource:
    """Pooled taps of a model at a noise level (ddae-spec 6): the grid's cells.

    `precision` (auto | bf16 | fp16 | fp32, see DDAEModel.fast_forward) speeds up `extract`, the fast
    protocols' whole-split passes; None runs the model as it is, as `batches` (the official protocol) always does.
    """

    def __init__(self, model: DDAEModel, layers: Sequence[str], precision: str | None = None):
        self.model = model
        self.layers = model.net.order_taps(layers)
        self.channels = [model.net.tap_channels[name] for name in self.layers]
        self.device = model.device
        self.precision = precision

    def extract(self, images: torch.Tensor, timestep: int, **kw) -> dict[str, torch.Tensor]:
        if self.precision is None:
            return extract_features(self.model, images, timestep, self.layers, **kw)
        with self.model.fast_forward(self.precision):
            return extract_features(self.model, images, timestep, self.layers,
                                    streams=extraction_streams(self.device), **kw)

    def batches(self, images: torch.Tensor, timesteps: Sequence[int], **kw) -> Batches:
        return feature_batches(self.model, images, timesteps, self.layers, **kw)


class PixelSource:
    """The images themselves, in the model's [-1, 1] range, flattened: what a probe gets without a network."""

    def __init__(self, image_shape: Sequence[int], device: torch.device):
        self.layers = [PIXELS]
        self.channels = [int(torch.tensor(list(image_shape)).prod())]
        self.device = device

    def batches(self, images: torch.Tensor, timesteps: Sequence[int], *, batch_size: int = 256,
                order: torch.Tensor | None = None, flip: bool = False, crop_padding: int = 0, seed: int = 0,
                stop: Callable[[], bool] | None = None, **_) -> Batches:
        """As feature_batches: the same seeded augmentation per batch, one (clean) entry per timestep."""
        order = torch.arange(len(images)) if order is None else order
        for batch_index, start in enumerate(range(0, len(order), batch_size)):
            if stop is not None and stop():
                raise Stopped
            index = order[start:start + batch_size]
            gen = torch.Generator(device=self.device).manual_seed((seed * 1_000_003 + batch_index) & 0x7FFF_FFFF_FFFF)
            batch = datasets.augment_batch(images[index].to(self.device), flip=flip, crop_padding=crop_padding,
                                           generator=gen)
            pixels = to_model_range(batch).flatten(1)
            yield index, [(torch.full((len(index),), int(t)), {PIXELS: pixels}) for t in timesteps]

    def extract(self, images: torch.Tensor, timestep: int, *, on_progress: Callable[[int, int], None] | None = None,
                **kw) -> dict[str, torch.Tensor]:
        out = torch.empty(len(images), self.channels[0])
        done = 0
        for index, [(_, feats)] in self.batches(images, [timestep], **kw):
            out[index] = feats[PIXELS].cpu()
            done += len(index)
            if on_progress is not None:
                on_progress(done, len(images))
        return {PIXELS: out}
