"""Linear probe heads for many layers at once, trained as one batched matrix multiply.

Head l is a Linear(C_l, K) initialised like nn.Linear; heads are stacked into W (L, C_max, K) with
zero rows where C_l < C_max (zero features there, so those rows get no gradient). One Adam over the
stack is exactly one independent Adam per head, because Adam is elementwise and the loss is the sum
of the heads' mean cross-entropies. Schedule as the official probe: cosine per epoch, no warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .classifier_training import cosine_lr


class ProbeHeads(nn.Module):
    def __init__(self, channels: Sequence[int], classes: int, generator: torch.Generator | None = None):
        super().__init__()
        self.channels = list(channels)
        self.classes = classes
        c_max = max(self.channels)
        weight = torch.zeros(len(self.channels), c_max, classes)
        bias = torch.empty(len(self.channels), classes)
        for i, c in enumerate(self.channels):
            bound = 1 / math.sqrt(c)  # nn.Linear's default initialisation for fan_in = c
            weight[i, :c].uniform_(-bound, bound, generator=generator)
            bias[i].uniform_(-bound, bound, generator=generator)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    @property
    def c_max(self) -> int:
        return self.weight.shape[1]

    def stack(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """[(B, C_l)] per head -> (L, B, C_max), zero-padded."""
        b = features[0].shape[0]
        out = features[0].new_zeros(len(features), b, self.c_max)
        for i, f in enumerate(features):
            out[i, :, : f.shape[1]] = f
        return out

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        """(L, B, C_max) -> logits (L, B, K)."""
        return torch.baddbmm(self.bias[:, None, :], stacked, self.weight)

    def loss(self, stacked: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self(stacked)
        return F.cross_entropy(logits.reshape(-1, self.classes), labels.repeat(logits.shape[0]),
                               reduction="sum") / labels.shape[0]

    @torch.no_grad()
    def correct(self, stacked: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(L,) number of correct predictions per head."""
        return (self(stacked).argmax(-1) == labels[None]).sum(1)

    def export(self) -> list[dict[str, torch.Tensor]]:
        """Each head as a plain Linear state: weight (K, C_l), bias (K,)."""
        return [{"weight": self.weight[i, :c].detach().t().contiguous().cpu(),
                 "bias": self.bias[i].detach().clone().cpu()} for i, c in enumerate(self.channels)]


def standardization(stacked: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head, per-channel mean and std over the samples of (L, N, C_max) features: (L, C_max) each.

    Constant channels (the zero padding among them) get std 1, so they stay as they are.
    """
    mean = stacked.mean(1)
    std = stacked.std(1)
    return mean, torch.where(std > eps, std, torch.ones_like(std))


@torch.no_grad()
def fold_standardization(heads: ProbeHeads, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Heads trained on (x - mean) / std become heads on raw x: W' = W / std, b' = b - mean . W'."""
    heads.weight.div_(std[:, :, None])
    heads.bias.sub_(torch.einsum("lc,lck->lk", mean, heads.weight))


class ProbeTrainer:
    """Adam (default betas, no weight decay) with the official per-epoch cosine schedule."""

    def __init__(self, heads: ProbeHeads, lr: float, epochs: int):
        self.heads, self.base_lr, self.epochs = heads, lr, epochs
        self.optimizer = torch.optim.Adam(heads.parameters(), lr=lr)

    def set_epoch(self, epoch: int) -> None:
        lr = cosine_lr(self.base_lr, epoch, self.epochs)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self, stacked: torch.Tensor, labels: torch.Tensor) -> float:
        loss = self.heads.loss(stacked, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach()) / len(self.heads.channels)
