"""Fine-tuning the truncated DDAE (ddae-spec 10; the paper's description, not in the official code).

The network keeps image_proj, the time embedding, every encoder block, the middle block and the
decoder blocks up to and including tap L (a DiT: its embeddings and blocks 0..k of tap layer-k, its
latents from the frozen VAE); a global pool and a linear head follow. Inputs are clean
images at the fixed time input of timestep T (EDM keeps its c_in scaling, DDPM sees sqrt(abar_T) x0);
dropout is on. `scratch` trains the same truncated network from random weights, the paper's comparison.

The recipe is our own (the paper gives none): AdamW, lr 1e-4 (head x10), weight decay 0.05, one epoch
of linear warm-up then cosine per step, flip + 4-pixel padded crop, batch 128.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
from torch import nn

from ...rundir import FINETUNE_RESULTS, RunStatus, atomic_write_text
from ..device import grad_scaler_for
from ..model import DDAEModel
from ..nets.blocks import ResAttBlock
from ..nets.dit import DiT
from ..spec.run_spec import FinetuneSpec
from .classifier_training import (
    ClassifierTraining,
    augmented_batches,
    held_out_accuracy,
    shuffled,
    train_classifier,
    warmup_cosine_scale,
)
from .common import open_context
from .features import Stopped

log = logging.getLogger(__name__)


def truncate(model: DDAEModel, layer: str) -> None:
    """Drop every module after tap `layer` from model.net, so its parameters are exactly those it needs."""
    net = model.net
    if isinstance(net, DiT):        # blocks 0..k, no output layer
        net.blocks = nn.ModuleList(list(net.blocks)[: net.tap_names.index(layer) + 1])
        net.final_layer = nn.Identity()
        return
    order = net.tap_names
    keep_up = 0
    if layer.startswith("out_"):
        count, target = 0, int(layer.split("_")[1])
        for i, m in enumerate(net.up):
            if isinstance(m, ResAttBlock):
                count += 1
                if count == target:
                    keep_up = i + 1
                    break
    elif layer.startswith("enc_"):
        raise ValueError("fine-tuning truncates in the decoder or at the middle block; pick out_k or mid")
    net.up = nn.ModuleList(list(net.up)[:keep_up])
    net.norm, net.final = nn.Identity(), nn.Identity()
    assert layer in order


class FinetuneModel(nn.Module):
    def __init__(self, model: DDAEModel, layer: str, timestep: int, classes: int):
        super().__init__()
        truncate(model, layer)
        self.model, self.layer, self.timestep = model, layer, timestep
        self.head = nn.Linear(model.net.tap_channels[layer], classes)

    def forward(self, images01: torch.Tensor) -> torch.Tensor:
        # Zero noise: the clean image (a DiT's clean latents) at timestep T's input scaling.
        clean = torch.zeros((len(images01), *self.model.noise_shape), device=images01.device)
        acts, _, _ = self.model.forward_pass(images01, self.timestep, [self.layer], noise=clean)
        return self.head(acts[self.layer].float().mean(dim=(2, 3)))


def finetune_run(spec: FinetuneSpec, run_dir: Path, reporter, workspace: Path) -> str:
    ctx = open_context(spec, run_dir, reporter, workspace)
    ctx.start(checkpoint=ctx.checkpoint_step)
    o, dev = spec.options, ctx.device
    layer, timestep = str(o.layer), int(o.timestep or 0)       # finetune_spec wrote both: the config's when blank
    if o.scratch:
        torch.manual_seed(ctx.seed)
        fresh = ctx.model.blank().to(dev)
        fresh.amp_dtype = ctx.model.amp_dtype
        ctx.model = fresh
    train = ctx.data("train", o.train_limit)
    test = ctx.data("test", o.test_limit)
    net = FinetuneModel(ctx.model, layer, timestep, len(train.classes)).to(dev)
    reporter.report("finetune/parameters", sum(p.numel() for p in net.parameters()), 0)
    lr, epochs, batch = o.lr, o.epochs, o.batch_size
    optimizer = torch.optim.AdamW([{"params": net.model.parameters(), "lr": lr},
                                   {"params": net.head.parameters(), "lr": lr * 10}], weight_decay=0.05)
    scaler = grad_scaler_for(dev, ctx.model.amp_dtype)  # fp16 autocast (the CUDA default) needs loss scaling
    steps_per_epoch = math.ceil(len(train) / batch)
    total = epochs * steps_per_epoch
    history = []

    def evaluate(epoch: int, mean_loss: float) -> dict[str, float]:
        net.eval()
        accuracy = held_out_accuracy(lambda start, images: net(images), test.images, test.labels, dev, ctx.stopped)
        history.append(accuracy)
        log.info(f"epoch {epoch + 1:>3}: loss {mean_loss:.4f}, test accuracy {100 * accuracy:.2f}%")
        return {"finetune/test_accuracy": accuracy}

    def batches(epoch: int):
        return augmented_batches(train.images, shuffled(len(train), ctx.seed, epoch), batch, dev,
                                 lambda i: ctx.seed * 1_000_003 + epoch * steps_per_epoch + i)

    job = ClassifierTraining(net, optimizer, train.labels, dev, epochs, steps_per_epoch,
                             lambda base, epoch, step: base * warmup_cosine_scale(step, steps_per_epoch, total),
                             reporter, "finetune", "finetune/train_loss", ctx.stopped, evaluate, scaler)
    try:
        train_classifier(job, batches)
    except Stopped:
        reporter.status(RunStatus.CANCELLED)
        return RunStatus.CANCELLED
    atomic_write_text(run_dir / FINETUNE_RESULTS, json.dumps({
        "layer": layer, "timestep": timestep, "scratch": o.scratch,
        "test_accuracy": history}, indent=1))
    reporter.status(RunStatus.DONE)
    return RunStatus.DONE
