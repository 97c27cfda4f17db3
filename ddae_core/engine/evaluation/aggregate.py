"""Learned aggregation (the aggregate protocol): one head over a softmax mixture of every cached (t, layer) cell.

As the aggregation networks of diffusion hyperfeatures, every cell's pooled features are brought to one common
width and mixed with learned weights before one shared linear head:

    z_c = (x_c - mean_c) / std_c                    per-cell standardisation over the cached training features
    h_c = LayerNorm(z_c P_c)                        a learned projection to DIM, normalised (no affine)
    logits = (sum_c w_c h_c) W + b,  w = softmax(m)  mixing weights over all T x L cells, summing to one

Projection, rather than concatenation, keeps the head's size independent of the number of cells; the
non-affine LayerNorm gives every projected cell the same scale, so the scale cannot hide in P_c and w_c alone says
how much each cell contributes: the weights painted on the heatmap. The mixing logits start at zero (equal
weights) and move at MIX_LR_SCALE x the heads' learning rate, so they can leave uniform within the probe's few
hundred steps. Trained on the grid's own cache with the heads' optimiser, epochs, batch and order; its accuracy on
the test images is quoted against the grid's best single cell (the gain) and the grid's baselines.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...rundir.figures import percent, points
from .classifier_training import cosine_lr
from .heads import standardization
from .instant import stack

DIM = 64                # the common width every cell is projected to
MIX_LR_SCALE = 20.0     # the mixing logits' learning rate, in units of the heads'
LABEL = "learned aggregation (softmax-mixed cells, one linear head)"
HEAD_FORMAT = "ddae-aggregate-head"


class AggregateHead(nn.Module):
    """Cells of pooled features (cells, B, C_max), raw, -> logits (B, K) through the mixture above."""

    mean: torch.Tensor          # (cells, C_max) buffers: each cell's training statistics
    std: torch.Tensor

    def __init__(self, channels: list[int], classes: int, dim: int = DIM, generator: torch.Generator | None = None):
        super().__init__()
        self.channels, self.classes, self.dim = list(channels), classes, dim
        c_max = max(self.channels)
        projection = torch.zeros(len(self.channels), c_max, dim)
        for i, c in enumerate(self.channels):
            projection[i, :c].uniform_(-1 / math.sqrt(c), 1 / math.sqrt(c), generator=generator)
        bound = 1 / math.sqrt(dim)
        self.projection = nn.Parameter(projection)
        self.mix = nn.Parameter(torch.zeros(len(self.channels)))
        self.weight = nn.Parameter(torch.empty(dim, classes).uniform_(-bound, bound, generator=generator))
        self.bias = nn.Parameter(torch.empty(classes).uniform_(-bound, bound, generator=generator))
        self.register_buffer("mean", torch.zeros(len(self.channels), c_max))
        self.register_buffer("std", torch.ones(len(self.channels), c_max))

    def weights(self) -> torch.Tensor:
        """The mixing weights (cells,), summing to one."""
        return torch.softmax(self.mix, 0)

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        z = (stacked - self.mean[:, None]) / self.std[:, None]
        h = F.layer_norm(torch.bmm(z, self.projection), (self.dim,))
        return torch.einsum("c,cbd->bd", self.weights(), h) @ self.weight + self.bias


def cached_cells(grid) -> torch.Tensor:
    """Every cell's cached training features, (T*L, V*N, C_max), t-major (the order of `cell_names`)."""
    blocks = [grid.caches[t] for t in grid.timesteps]
    return torch.cat([torch.from_numpy(np.ascontiguousarray(b)) if isinstance(b, np.ndarray) else b for b in blocks])


def cell_names(timesteps: list[int], layers: list[str]) -> list[tuple[int, str]]:
    return [(t, layer) for t in timesteps for layer in layers]


def train_aggregate(grid, features: torch.Tensor) -> AggregateHead:
    """The mixture trained on `features` (cached_cells) with the grid's optimiser settings, seeded by its seed."""
    o, n, views = grid.options, len(grid.train), grid.options.views
    channels = [c for _ in grid.timesteps for c in grid.channels]
    head = AggregateHead(channels, grid.classes, generator=grid.generator(43))
    head = head.to(grid.work_device)
    features = features.to(grid.work_device)
    mean, std = standardization(features)
    head.mean.copy_(mean)
    head.std.copy_(std)
    others = [p for name, p in head.named_parameters() if name != "mix"]
    optimizer = torch.optim.Adam([{"params": others, "lr": o.lr, "scale": 1.0},
                                  {"params": [head.mix], "lr": o.lr * MIX_LR_SCALE, "scale": MIX_LR_SCALE}])
    labels = grid.train.labels.to(grid.work_device)
    for epoch in range(o.epochs):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(o.lr * group["scale"], epoch, o.epochs)
        order = grid.epoch_order(epoch).to(grid.work_device)
        offset = (epoch % views) * n
        for start in range(0, n, o.batch_size):
            index = order[start:start + o.batch_size]
            loss = F.cross_entropy(head(features[:, offset + index]), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        grid.ctx.reporter.progress(epoch + 1, o.epochs, "aggregate")
    return head.eval()


@torch.no_grad()
def aggregate_accuracy(head: AggregateHead, features: torch.Tensor, labels: torch.Tensor, batch: int = 1024) -> float:
    correct = 0
    for start in range(0, features.shape[1], batch):
        logits = head(features[:, start:start + batch].to(head.mean.device))
        correct += int((logits.argmax(1).cpu() == labels[start:start + batch].cpu()).sum())
    return correct / max(1, features.shape[1])


def aggregate_cells(grid) -> dict:
    """Train the mixture over the grid's cache; grid.json's "aggregate" (the head itself in grid.aggregate_head)."""
    head = train_aggregate(grid, cached_cells(grid))
    width = max(grid.channels)
    test = torch.cat([stack(grid.evaluation_features(t)["test"], grid.layers, width) for t in grid.timesteps])
    accuracy = aggregate_accuracy(head, test, grid.test.labels)
    grid.aggregate_head = head
    weights = head.weights().detach().cpu().tolist()
    best = grid.best()
    result = {"label": LABEL, "dim": DIM, "accuracy": accuracy,
              "weights": {str(t): {layer: w for (tt, layer), w in zip(cell_names(grid.timesteps, grid.layers),
                                                                      weights) if tt == t} for t in grid.timesteps},
              "best_cell": None if best is None else {"timestep": best[0], "layer": best[1], "accuracy": best[2]},
              "gain": None if best is None else accuracy - best[2]}
    grid.ctx.reporter.report("probe/aggregate/accuracy", accuracy, grid.ctx.checkpoint_step or 0)
    return result


def aggregate_summary(aggregate: dict, baselines: dict | None) -> str:
    """`learned aggregation 96.1%, +0.7 points over the best cell (t=51, out_5) 95.4%; raw pixels .., random init ..`"""
    text = f"learned aggregation {percent(aggregate['accuracy'])}"
    best = aggregate.get("best_cell")
    if best:
        text += (f", {points(aggregate['gain'])} points over the best cell (t={best['timestep']}, {best['layer']}) "
                 f"{percent(best['accuracy'])}")
    if baselines:
        text += (f"; raw pixels {percent(baselines['pixels']['accuracy'])}, "
                 f"random init {percent(baselines['random_init']['accuracy'])}")
    return text


def export_head(head: AggregateHead, timesteps: list[int], layers: list[str]) -> dict:
    """heads.pt's "aggregate": what Classify needs to rebuild the head (see AggregateHead)."""
    return {"format": HEAD_FORMAT, "timesteps": list(timesteps), "layers": list(layers), "dim": head.dim,
            "channels": head.channels, "state": {k: v.detach().cpu() for k, v in head.state_dict().items()}}


def load_head(saved: dict) -> AggregateHead:
    head = AggregateHead(saved["channels"], int(saved["state"]["bias"].shape[0]), dim=int(saved["dim"]))
    head.load_state_dict(saved["state"])
    return head.eval()
