"""The attentive protocol: a cross-attention pooling head over a tap's spatial tokens instead of the mean pool.

A linear probe reads a tap through its spatial mean, so whatever the mean throws away (where things are, which
part of the map holds the object) never reaches it. Here, per cell, QUERIES learned queries attend over the tap's
tokens and one linear classifier reads what they pooled (V-JEPA's attentive probe, in its smallest form):

    z_s = (x_s - mean) / std                       tokens standardised per channel over the training tokens
    a_qs = softmax_s(z_s . q_q / sqrt(C))          each query's attention over the S tokens
    logits = Linear(concat_q sum_s a_qs z_s)

No key or value projection: with learned queries a key projection folds into the query (z W_k . q = z . W_k q),
and a value projection into the linear classifier. The queries start at zero, where every query is the mean pool,
so training starts from the (standardised) linear probe and the heatmap shows what attention adds to it. With a
one-token map the head is a linear probe over QUERIES copies of the token.

Memory: each tap is average-pooled to at most TOKENS x TOKENS tokens and cached in fp16, one noise level at a
time (N x S x C per layer); pick a few noise levels or layers for a large split. Trained with the grid's Adam,
cosine schedule, epochs, batch and order on one augmented view (the fast grid's first view's seed), tested on the
same test (and held-out) pass as the other protocols. Not the official protocol, and labelled as such.
"""

from __future__ import annotations

import math

import psutil
import torch
import torch.nn.functional as F
from torch import nn

from ..data import ImageData
from ..errors import UserError
from .classifier_training import cosine_lr
from .features import Stopped, feature_batches

TOKENS = 8          # a tap's map is average-pooled to at most TOKENS x TOKENS tokens
QUERIES = 4
LABEL = "attentive (cross-attention pooling over standardised tokens; not the official protocol)"


class AttentiveHead(nn.Module):
    """(B, S, C) tokens of one tap -> logits (B, K), as the module says."""

    mean: torch.Tensor          # (C,) buffers: the training tokens' per-channel statistics
    std: torch.Tensor

    def __init__(self, channels: int, classes: int, queries: int = QUERIES, generator: torch.Generator | None = None):
        super().__init__()
        self.channels, self.queries = channels, queries
        bound = 1 / math.sqrt(queries * channels)       # nn.Linear's initialisation for its fan-in
        self.query = nn.Parameter(torch.zeros(queries, channels))
        weight = torch.empty(classes, queries * channels).uniform_(-bound, bound, generator=generator)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.empty(classes).uniform_(-bound, bound, generator=generator))
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def attention(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, S, Q): each query's weights over the tokens, summing to one over S."""
        z = (tokens - self.mean) / self.std
        return torch.softmax(z @ self.query.T / math.sqrt(self.channels), dim=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        z = (tokens - self.mean) / self.std
        pooled = torch.einsum("bsq,bsc->bqc", self.attention(tokens), z)
        return F.linear(pooled.flatten(1), self.weight, self.bias)


def extract_tokens(grid, data: ImageData, t: int, seed: int, augment: bool,
                   on_progress=None) -> dict[str, torch.Tensor]:
    """{layer: (N, S, C) fp16} tokens of `data` at t, one seeded noise draw (flip + 4-pixel crop when `augment`)."""
    model, out, done = grid.source.model, {}, 0       # the grid's network: trained, or its random-init baseline
    with model.fast_forward(grid.precision):
        for index, [(_, feats)] in feature_batches(model, data.images, [t], grid.layers, batch_size=grid.extract_batch,
                                                   flip=augment, crop_padding=4 if augment else 0, seed=seed,
                                                   stop=grid.ctx.stopped, tokens=TOKENS):
            for name, value in feats.items():
                if name not in out:
                    out[name] = torch.empty(len(data), *value.shape[1:], dtype=torch.float16)
                out[name][index] = value.to("cpu", torch.float16)
            done += len(index)
            if on_progress is not None:
                on_progress(done, len(data))
    return out


def train_head(grid, tokens: torch.Tensor, generator: torch.Generator) -> AttentiveHead:
    """One cell's head on its cached training tokens, with the grid's optimiser, schedule, epochs and order."""
    o, device = grid.options, grid.work_device
    head = AttentiveHead(tokens.shape[2], grid.classes, generator=generator).to(device)
    flat = tokens.flatten(0, 1).float()
    head.mean.copy_(flat.mean(0))
    std = flat.std(0)
    head.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
    optimizer = torch.optim.Adam(head.parameters(), lr=o.lr)
    labels = grid.train.labels.to(device)
    for epoch in range(o.epochs):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(o.lr, epoch, o.epochs)
        order = grid.epoch_order(epoch)
        for start in range(0, len(order), o.batch_size):
            index = order[start:start + o.batch_size]
            loss = F.cross_entropy(head(tokens[index].to(device).float()), labels[index.to(device)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return head.eval()


@torch.no_grad()
def head_accuracy(head: AttentiveHead, tokens: torch.Tensor, labels: torch.Tensor, batch: int = 512) -> float:
    correct = 0
    for start in range(0, len(tokens), batch):
        logits = head(tokens[start:start + batch].to(head.mean.device).float())
        correct += int((logits.argmax(1).cpu() == labels[start:start + batch]).sum())
    return correct / max(1, len(tokens))


def check_memory(grid) -> None:
    """Refuse, in one sentence, a token cache (one noise level, all images) larger than the probe's memory budget."""
    images = len(grid.train) + len(grid.test) + (len(grid.held) if grid.held is not None else 0)
    need = images * TOKENS * TOKENS * sum(grid.channels) * 2           # at most TOKENS^2 fp16 tokens per tap
    budget_mb = grid.options.cache_memory_mb
    budget = (min(4096 * 2**20, psutil.virtual_memory().available / 4) if budget_mb is None
              else budget_mb * 2**20)
    if need > budget:
        raise UserError(f"The attentive probe's token cache would need {need / 2**30:.1f} GB for {images:,} images "
                        f"and {len(grid.layers)} layers at one noise level, over its {budget / 2**30:.1f} GB budget; "
                        f"probe fewer layers (--layers), fewer images (--train-limit) or raise --cache-memory-mb.")


def run_attentive(grid) -> None:
    """Every cell of `grid` (a ProbeGrid) by an attentive head, row by row as each noise level is trained."""
    n, layers = len(grid.train), len(grid.layers)
    check_memory(grid)
    per_row = n * (1 + layers)             # progress units: the extraction, then each layer's head
    total = len(grid.timesteps) * per_row
    for row, t in enumerate(grid.timesteps):
        def progress(done: int, _n: int, row=row, t=t) -> None:
            grid._progress(row * per_row + done, total, f"extract tokens t={t}")
        # The training view is the fast grid's first (seed 41, t, 0); test and held-out passes are every protocol's.
        train = extract_tokens(grid, grid.train, t, grid.seed_for(41, t, 0), augment=True, on_progress=progress)
        evaluation = {split: extract_tokens(grid, data, t, grid.seed_for(seed, t), augment=False)
                      for split, data, seed in (("test", grid.test, 17), ("held", grid.held, 19)) if data is not None}
        grid.cells[t], held = {}, {}
        for i, layer in enumerate(grid.layers):
            if grid.ctx.stopped():
                raise Stopped
            grid._progress(row * per_row + (1 + i) * n, total, f"attentive heads t={t}")
            head = train_head(grid, train[layer], grid.generator(47, t, i))
            grid.cells[t][layer] = head_accuracy(head, evaluation["test"][layer], grid.test.labels)
            if "held" in evaluation:
                held[layer] = head_accuracy(head, evaluation["held"][layer], grid.held.labels)
        if held:
            grid.held_cells[t] = held
        if grid.emit:
            for layer, accuracy in grid.cells[t].items():
                grid.ctx.reporter.grid_cell(layer, t, accuracy)
