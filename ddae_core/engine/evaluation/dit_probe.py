"""The DDAE code's DiT probe (FutureXiang/ddae `DiT/linear.py`) as the `dit-official` protocol of a probe grid.

What it computes, as the official code does:
- the latents come from the latent cache (engine.latents): K augmented copies of the training split (flip and
  padded crop at the dataset's size, resize to 256, a VAE posterior sample; K = 10 officially) and the
  un-augmented test copy, built once per VAE and data and shared by every probe;
- every training batch takes each image from one of the K copies at random, noises it to DiT's 0-indexed t with
  fresh noise, runs DiT with the null class and mean-pools the block's tokens; a linear head per cell learns on
  them with Adam (lr 1e-3), a cosine schedule per epoch, 30 epochs, batches of 128;
- the test accuracy is that of the final epoch's heads on one noisy pass of the test copy; the official code
  picks no cell (it probes one, layer-13 at t = 121 for CIFAR-10, 81 for Tiny-ImageNet), so a grid's best cell
  is chosen on the test images and says so.
Differences, said where they matter: the official script multiplies lr by its number of GPUs (its README ran
4 with 128 images each); here one process takes batches of `batch_size` at that `lr`.

The baselines are those of every grid: the same heads on raw pixels (the official pixel protocol, at the
dataset's size) and on DiT at a fixed random initialisation through this same latent protocol.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..latents import LatentReader, build_latent_cache
from ..model import DiTModel, pool_features
from ..spec.run_spec import ProbeSpec
from .common import EvalContext
from .features import Stopped
from .heads import ProbeHeads
from .probe import ProbeGrid, _seed
from .probe_job import probe_run

log = logging.getLogger(__name__)

PROTOCOL = "dit-official"
_NOISE_SALT = 0xD17


class LatentProbeGrid(ProbeGrid):
    """A ProbeGrid whose official protocol reads the latent cache instead of augmenting images each epoch."""

    def __init__(self, ctx: EvalContext, source=None, timesteps: list[int] | None = None, emit: bool = True,
                 data=None, stage: str = ""):
        super().__init__(ctx, source, timesteps, emit, data, stage)
        model = self.source.model
        if not isinstance(model, DiTModel):
            raise TypeError("the dit-official protocol probes a DiT")
        self.dit: DiTModel = model
        self.cache = build_latent_cache(model.vae, self.train, self.test, data_root=ctx.workspace / "data",
                                        copies=self.options.latent_copies, resolution=model.resolution,
                                        seed=0, reporter=ctx.reporter)
        self.reader = LatentReader(self.cache, self.batch_size, seed=ctx.seed)
        if emit:
            log.info(f"latent cache: {self.cache.copies} augmented copies and the test copy, "
                     f"{self.cache.size_bytes / 1e9:.2f} GB in {self.cache.folder}")

    def _load_data(self):
        """The whole training split trains (the official code holds none out); the best cell is chosen on test."""
        o = self.options
        return self.ctx.data("train", o.train_limit), self.ctx.data("test", o.test_limit), None

    def _pooled(self, latents: torch.Tensor, t: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """{layer: (B, hidden)} of one noise draw at t, with the null class, tokens mean-pooled (as linear.py)."""
        noise = torch.randn(latents.shape, generator=generator)
        with torch.no_grad():
            acts, _, _ = self.dit.latent_pass(latents, t, self.layers, noise=noise)
        return pool_features(acts)

    def run_official(self) -> None:
        pairs = [self.new_heads(t, self.channels) for t in self.timesteps]
        steps = self.reader.steps_per_epoch
        for epoch in range(self.epochs):
            for _, trainer in pairs:
                trainer.set_epoch(epoch)
            for i, (latents, labels) in enumerate(self.reader.train_epoch(epoch)):
                if self.ctx.stopped():
                    raise Stopped
                generator = torch.Generator().manual_seed(_seed(self.ctx.seed, _NOISE_SALT, epoch, i))
                y = labels.to(self.work_device)
                for t, (heads, trainer) in zip(self.timesteps, pairs):
                    feats = self._pooled(latents, t, generator)
                    trainer.step(heads.stack([feats[name] for name in self.layers]).to(self.work_device), y)
                self._progress(epoch * steps + i + 1, self.epochs * steps, "probe (dit-official)")
        for t, (heads, _) in zip(self.timesteps, pairs):
            self.finish_row(t, heads)

    def evaluation_features(self, t: int) -> dict[str, dict[str, torch.Tensor]]:
        """{"test": {layer: (N, hidden)}}: one noisy pass of the un-augmented test copy at t, once per grid."""
        if t not in self.eval_feats:
            generator = torch.Generator().manual_seed(_seed(self.ctx.seed, 17, t))
            parts, labels = [], []
            for latents, y in self.reader.test_batches(self.extract_batch):
                parts.append(self._pooled(latents, t, generator))
                labels.append(y)
            self.test_labels = torch.cat(labels)
            self.eval_feats[t] = {"test": {name: torch.cat([p[name] for p in parts]) for name in self.layers}}
        return self.eval_feats[t]

    def accuracy(self, heads: ProbeHeads, data, feats: dict[str, torch.Tensor]) -> list[float]:
        """Each head's accuracy on the test copy's features `feats`, against the cache's own test labels."""
        stacked = heads.stack([feats[name] for name in self.layers]).to(self.work_device)
        correct = heads.correct(stacked, self.test_labels.to(self.work_device))
        return (correct.float() / max(len(self.test_labels), 1)).tolist()


def dit_probe_run(spec: ProbeSpec, run_dir: Path, reporter, workspace: Path) -> str:
    """probe_run with the latent-cache grid (protocol dit-official)."""
    return probe_run(spec, run_dir, reporter, workspace, grid_class=LatentProbeGrid)
