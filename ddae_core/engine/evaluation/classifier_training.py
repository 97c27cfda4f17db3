"""The one small-classifier training loop, shared by the noisy head, the WRN baseline and fine-tuning.

Each caller brings its network, optimizer, learning-rate schedule and batches (with whatever input
transform it needs: noising, feature extraction); the loop owns the rest, written once: the stop
check before every batch, the lr of every step, the (optionally loss-scaled) optimizer step, progress,
the epoch's mean loss as a metric and the caller's evaluation after each epoch.

The shuffles and augmentation seeds below are the ones the three jobs have always used, so their
results are bit-identical to the loops this module replaced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .. import data as datasets
from .features import Stopped

Batch = tuple[torch.Tensor, tuple]      # (indices into the training set, the network's inputs)

EVAL_BATCH = 256


class TrainingReporter(Protocol):
    """What the loop tells its host (the engine's Reporter, or a test's recorder)."""

    def progress(self, done: int, total: int, stage: str = "") -> None: ...

    def report(self, key: str, value: float, step: int) -> None: ...


# Learning-rate schedules: lr of a param group from its base lr at 0-based (epoch, step).
def cosine_lr(base: float, epoch: int, epochs: int) -> float:
    """CosineAnnealingLR(T_max=epochs) stepped per epoch, from `base` (the official probe's and head's schedule)."""
    return base * (1 + math.cos(math.pi * epoch / epochs)) / 2


def warmup_cosine_scale(step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Factor on the base lr per step: one epoch of linear warm-up, then a cosine to 0 (fine-tuning's recipe)."""
    return min((step + 1) / steps_per_epoch, 0.5 * (1 + math.cos(math.pi * step / total_steps)))


# Batches.
def shuffled(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The training order of `epoch`: a permutation of n drawn from its own generator, not the global one."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))


def augmented_batches(images: torch.Tensor, order: torch.Tensor, batch_size: int, device,
                      batch_seed: Callable[[int], int],
                      transform: Callable[[torch.Tensor, torch.Generator], tuple] | None = None) -> Iterator[Batch]:
    """Flipped, 4-pixel padded-crop batches of uint8 `images` in `order`, with the network's inputs.

    batch_seed: the i-th batch's seed; its generator (on `device`) draws the augmentation and then
        anything `transform(images01, generator)` draws, such as the noise.
    """
    for i, start in enumerate(range(0, len(order), batch_size)):
        index = order[start:start + batch_size]
        generator = torch.Generator(device=device).manual_seed(batch_seed(i))
        batch = datasets.augment_batch(images[index].to(device), flip=True, crop_padding=4, generator=generator)
        yield index, (batch,) if transform is None else transform(batch, generator)


# Training.
@dataclass
class ClassifierTraining:
    """One classifier's training: what the loop needs beyond its batches.

    lr: (base lr, epoch, step) -> the lr of a param group at that step; the bases are the groups' lrs
        when the loop starts. Steps count from 0 over the whole run.
    evaluate: after each epoch, (epoch, mean loss) -> further metrics to report at epoch + 1.
    scaler: a GradScaler when autocast runs in float16, else None.
    """

    net: nn.Module
    optimizer: torch.optim.Optimizer
    labels: torch.Tensor                # the training set's labels, on the CPU
    device: torch.device | str
    epochs: int
    steps_per_epoch: int                # batches(epoch) yields this many (the last may be short)
    lr: Callable[[float, int, int], float]
    reporter: TrainingReporter
    stage: str                          # the progress bar's label
    loss_key: str                       # metric of the epoch's mean training loss
    stop: Callable[[], bool]
    evaluate: Callable[[int, float], dict[str, float]] | None = None
    scaler: torch.amp.GradScaler | None = None


def train_classifier(job: ClassifierTraining, batches: Callable[[int], Iterable[Batch]]) -> None:
    """Train `job.net` for `job.epochs` on batches(epoch), cross-entropy against the labels. Raises Stopped."""
    bases = [group["lr"] for group in job.optimizer.param_groups]
    total = job.epochs * job.steps_per_epoch
    for epoch in range(job.epochs):
        job.net.train()
        losses = []
        for i, (index, inputs) in enumerate(_stoppable(batches(epoch), job.steps_per_epoch, job.stop)):
            step = epoch * job.steps_per_epoch + i
            for group, base in zip(job.optimizer.param_groups, bases):
                group["lr"] = job.lr(base, epoch, step)
            losses.append(_step(job, inputs, job.labels[index].to(job.device)))
            job.reporter.progress(step + 1, total, job.stage)
        mean_loss = sum(losses) / len(losses)
        metrics = job.evaluate(epoch, mean_loss) if job.evaluate is not None else {}
        job.reporter.report(job.loss_key, mean_loss, epoch + 1)
        for key, value in metrics.items():
            job.reporter.report(key, value, epoch + 1)


def _stoppable(batches: Iterable[Batch], count: int, stop: Callable[[], bool]) -> Iterator[Batch]:
    """The epoch's `count` batches, checking for a stop request before each one is made (not after the last).

    A generator of batches is closed at the end, so whatever it holds open is released now.
    """
    iterator = iter(batches)
    try:
        for _ in range(count):
            if stop():
                raise Stopped
            batch = next(iterator, None)
            if batch is None:
                return
            yield batch
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def _step(job: ClassifierTraining, inputs: tuple, labels: torch.Tensor) -> float:
    """One optimizer step on one batch; the batch's loss."""
    loss = F.cross_entropy(job.net(*inputs), labels)
    job.optimizer.zero_grad(set_to_none=True)
    if job.scaler is not None:
        job.scaler.scale(loss).backward()
        job.scaler.step(job.optimizer)
        job.scaler.update()
    else:
        loss.backward()
        job.optimizer.step()
    return float(loss.detach())


# Evaluation.
@torch.no_grad()
def held_out_accuracy(predict: Callable[[int, torch.Tensor], torch.Tensor], images: torch.Tensor,
                  labels: torch.Tensor, device, stop: Callable[[], bool]) -> float:
    """Fraction of un-augmented test images whose logits predict(start, images01) pick the label. Raises Stopped.

    start: the batch's first index, for callers that seed per batch.
    """
    correct = 0
    for start in range(0, len(images), EVAL_BATCH):
        if stop():
            raise Stopped
        index = torch.arange(start, min(start + EVAL_BATCH, len(images)))
        batch = datasets.augment_batch(images[index].to(device), flip=False)
        correct += int((predict(start, batch).argmax(-1).cpu() == labels[index]).sum())
    return correct / len(images)
