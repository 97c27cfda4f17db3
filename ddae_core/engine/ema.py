"""Exponential moving average of the network weights, with ema-pytorch's warm-up (ddae-spec 9.1)."""

from __future__ import annotations

import copy

import torch
from torch import nn

# ema-pytorch up to 0.6.5 (the official runs, 2023, used 0.2.x) with update_after_step=0 copies the weights
# at the first update and again at the second (it initialises, then lerps a copy onto itself); 0.7.0 and
# later copy at the first only.
COPY_UPDATES = 2


class EMA:
    """decay_k = min(decay, 1 - k^(-2/3)) at the k-th update, the first two updates copy, as the official runs.

    Without warm-up the decay is constant once the copies are done. The shadow model is in eval mode
    and never requires grad.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True):
        self.decay = float(decay)
        self.warmup = warmup
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    def current_decay(self) -> float:
        if self.updates <= COPY_UPDATES:
            return 0.0
        if not self.warmup:
            return self.decay
        return min(self.decay, 1 - self.updates ** (-2 / 3))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = self.current_decay()
        shadow = list(self.model.parameters())
        live = [p.detach() for p in model.parameters()]
        if decay == 0.0:
            torch._foreach_copy_(shadow, live)
        else:
            torch._foreach_lerp_(shadow, live, 1 - decay)

    def state_dict(self) -> dict:
        """The shadow network's state dict (UNet keys, as our checkpoints store it)."""
        return self.model.net.state_dict()

    def load_state_dict(self, state: dict, updates: int) -> None:
        self.model.net.load_state_dict(state)
        self.updates = int(updates)
