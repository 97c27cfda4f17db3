"""Noise-conditional classifiers (ddae-spec 8): a 2-layer MLP on frozen DDAE features, or a WRN baseline.

Both train over random noise levels (DDPM t ~ U{1..T}; the MLP on EDM indices U{1..18}, the WRN on
EDM's log-normal sigma) with flip + crop, and report test accuracy at each evaluated level (the 20 DDPM
steps 1, 51, ..., 951 or the 18 EDM sigmas) as the metric `noisy/accuracy` with the level as its step.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
from torch import nn

from ...rundir import NOISY_HEAD, NOISY_RESULTS, ArtifactKind, RunStatus, atomic_write_text
from ..checkpoint import atomic_torch_save
from ..diffusion import EDM
from ..model import to_model_range
from ..nets.blocks import TimeEmbedding
from ..nets.wideresnet import NoiseConditionalWRN
from ..spec.options import NoisyOptions
from ..spec.run_spec import NoisySpec
from .classifier_training import (
    ClassifierTraining,
    augmented_batches,
    cosine_lr,
    held_out_accuracy,
    shuffled,
    train_classifier,
)
from .common import EvalContext, open_context
from .features import Stopped, feature_batches

log = logging.getLogger(__name__)

HEAD_FORMAT = "ddae-noisy-head"


class NoisyHead(nn.Module):
    """logits = Lin(2C -> K)(SiLU(Lin(C -> 2C)(f + TimeEmbedding_C(t)))); t is the raw integer level.

    With C = 256 and 10 classes it has the official 219,146 parameters.
    """

    def __init__(self, dim: int, classes: int):
        super().__init__()
        self.time_emb = TimeEmbedding(dim)
        self.cls = nn.Sequential(nn.Linear(dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, classes))

    def forward(self, features: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return self.cls(features + self.time_emb(timestep.float()))


WRN_WARM_EPOCHS = 5  # the official noisy_classifier_WRN.py --warm_epoch


def wrn_lr(base: float, epoch: int, epochs: int, warm_epochs: int = WRN_WARM_EPOCHS) -> float:
    """The official WRN schedule at 0-based `epoch`: linear warm-up, then the cosine continued from the warm-up's end.

    The official loop overwrites the lr with base * (e+1) / warm_epochs for the first warm_epochs epochs
    and steps CosineAnnealingLR(T_max=epochs) after every epoch; its recursive form then scales the lr it
    finds, so after warm-up the lr is base * (1 + cos(pi e / epochs)) / (1 + cos(pi (warm_epochs - 1) / epochs)),
    not the closed-form cosine (20% higher at e=5 of 15).
    """
    if epoch < warm_epochs:
        return base * (epoch + 1) / warm_epochs
    return base * (1 + math.cos(math.pi * epoch / epochs)) / (1 + math.cos(math.pi * (warm_epochs - 1) / epochs))


class NoisyClassifier:
    def __init__(self, ctx: EvalContext):
        self.ctx = ctx
        self.options: NoisyOptions = ctx.opts
        o = self.options
        self.model = ctx.model
        self.framework = self.model.framework
        self.train = ctx.data("train", o.train_limit)
        self.test = ctx.data("test", o.test_limit)
        self.classes = len(self.train.classes)
        self.levels = self.framework.classifier_levels()
        self.epochs, self.batch_size, self.lr = o.epochs, o.batch_size, o.lr
        self.steps_per_epoch = math.ceil(len(self.train) / self.batch_size)

    def sigma_of(self, level: int) -> float:
        return self.framework.sigma_equivalent(level)

    def order(self, epoch: int) -> torch.Tensor:
        return shuffled(len(self.train), self.ctx.seed, epoch)

    # The DDAE head on frozen features.
    def run_head(self) -> dict[int, float]:
        layer = str(self.options.layer)     # noisy_spec wrote it: the config's when blank
        dim = self.model.net.tap_channels[layer]
        torch.manual_seed(self.ctx.seed)
        head = NoisyHead(dim, self.classes).to(self.ctx.device)
        opt = torch.optim.Adam(head.parameters(), lr=self.lr)
        hi = self.framework.max_timestep

        def random_levels(b: int, gen: torch.Generator) -> torch.Tensor:
            return torch.randint(1, hi + 1, (b,), generator=gen, device=gen.device)

        def batches(epoch: int):
            for index, [(t, feats)] in feature_batches(
                    self.model, self.train.images, [random_levels], [layer], batch_size=self.batch_size,
                    order=self.order(epoch), flip=True, crop_padding=4, seed=self.ctx.seed * 31 + epoch,
                    stop=self.ctx.stopped):
                yield index, (feats[layer], t)

        train_classifier(self._training(head, opt, lambda base, epoch, step: cosine_lr(base, epoch, self.epochs),
                                        "train head"), batches)
        head.eval()
        accuracy = {}
        for level in self.levels:
            correct = 0
            with torch.no_grad():
                for index, [(t, feats)] in feature_batches(self.model, self.test.images, [level], [layer],
                                                           batch_size=256, seed=self.ctx.seed * 131 + level,
                                                           stop=self.ctx.stopped):
                    pred = head(feats[layer], t).argmax(-1).cpu()
                    correct += int((pred == self.test.labels[index]).sum())
            accuracy[level] = self._report_level(level, correct / len(self.test))
        atomic_torch_save({"format": HEAD_FORMAT, "layer": layer, "dim": dim, "classes": list(self.train.classes),
                           "state": {k: v.cpu() for k, v in head.state_dict().items()},
                           "accuracy": {str(k): v for k, v in accuracy.items()}}, self.ctx.run_dir / NOISY_HEAD)
        return accuracy

    # The WRN baseline, trained from scratch on noisy images.
    def _noisy_input(self, images01: torch.Tensor, levels: torch.Tensor | None, gen: torch.Generator):
        x = to_model_range(images01)
        noise = torch.randn(x.shape, generator=gen, device=x.device)
        b = x.shape[0]
        if isinstance(self.framework, EDM):
            if levels is None:  # training: EDM's log-normal sigma
                sigma = (torch.randn(b, generator=gen, device=x.device) * self.framework.p_std
                         + self.framework.p_mean).exp()
            else:
                sigma = self.framework.sigmas_for(levels).float()
            return x + sigma.view(-1, 1, 1, 1) * noise, sigma.log()
        if levels is None:
            levels = torch.randint(1, self.framework.n_T + 1, (b,), generator=gen, device=x.device)
        noisy, _, time_in = self.framework.perturb(x, levels, noise)
        return noisy, time_in

    def run_wrn(self) -> dict[int, float]:
        torch.manual_seed(self.ctx.seed)
        net = NoiseConditionalWRN(self.options.depth, self.options.width, self.classes).to(self.ctx.device)
        opt = torch.optim.SGD(net.parameters(), lr=self.lr, momentum=0.9, weight_decay=5e-4)
        seed, dev = self.ctx.seed, self.ctx.device

        def batches(epoch: int):
            return augmented_batches(self.train.images, self.order(epoch), self.batch_size, dev,
                                     lambda i: seed * 1_000_003 + epoch * 10_007 + i,
                                     lambda images, gen: self._noisy_input(images, None, gen))

        train_classifier(self._training(net, opt, lambda base, epoch, step: wrn_lr(base, epoch, self.epochs),
                                        "train WRN"), batches)
        net.eval()
        accuracy = {}
        for level in self.levels:
            def predict(start: int, images: torch.Tensor, level: int = level) -> torch.Tensor:
                gen = torch.Generator(device=dev).manual_seed(seed * 131 + level * 7 + start)
                levels = torch.full((len(images),), level, device=dev, dtype=torch.long)
                return net(*self._noisy_input(images, levels, gen))

            acc = held_out_accuracy(predict, self.test.images, self.test.labels, dev, self.ctx.stopped)
            accuracy[level] = self._report_level(level, acc)
        return accuracy

    def _training(self, net: nn.Module, optimizer, lr, stage: str) -> ClassifierTraining:
        return ClassifierTraining(net, optimizer, self.train.labels, self.ctx.device, self.epochs,
                                  self.steps_per_epoch, lr, self.ctx.reporter, stage, "noisy/train_loss",
                                  self.ctx.stopped)

    def _report_level(self, level: int, acc: float) -> float:
        self.ctx.reporter.report("noisy/accuracy", acc, level)
        self.ctx.reporter.report("noisy/sigma", self.sigma_of(level), level)
        log.info(f"level {level:>4} (sigma {self.sigma_of(level):9.4f}): accuracy {100 * acc:6.2f}%")
        return acc


def noisy_run(spec: NoisySpec, run_dir: Path, reporter, workspace: Path) -> str:
    ctx = open_context(spec, run_dir, reporter, workspace)
    ctx.start(checkpoint=ctx.checkpoint_step)
    job = NoisyClassifier(ctx)
    try:
        accuracy = job.run_wrn() if spec.options.baseline == "wrn" else job.run_head()
    except Stopped:
        reporter.status(RunStatus.CANCELLED)
        return RunStatus.CANCELLED
    atomic_write_text(run_dir / NOISY_RESULTS, json.dumps({
        "baseline": spec.options.baseline, "layer": spec.options.layer,
        "levels": job.levels, "sigmas": [job.sigma_of(t) for t in job.levels],
        "accuracy": [accuracy[t] for t in job.levels]}, indent=1))
    reporter.artifact(ArtifactKind.FILE, run_dir / NOISY_RESULTS)
    reporter.status(RunStatus.DONE)
    return RunStatus.DONE
