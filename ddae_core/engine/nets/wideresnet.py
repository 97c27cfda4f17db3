"""The noise-conditional Wide-ResNet baseline (score-SDE App. I.1, as ported in ddae-spec 8.2).

WRN-28-10 has 38,913,114 trainable parameters. The input is standardised per image; the noise level
c (DDPM t/T, EDM ln sigma) enters through fixed Gaussian Fourier features and a 2-layer MLP, and is
added after the first convolution of every block.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _norm_relu(channels: int, relu: bool = True) -> nn.Module:
    gn = nn.GroupNorm(min(channels // 4, 32), channels, eps=1e-5)
    return nn.Sequential(gn, nn.ReLU()) if relu else gn


class FourierFeatures(nn.Module):
    def __init__(self, size: int = 128, scale: float = 16.0):
        super().__init__()
        self.W = nn.Parameter(torch.randn(size) * scale, requires_grad=False)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        proj = c.float()[:, None] * self.W[None, :] * 2 * math.pi
        return torch.cat([proj.sin(), proj.cos()], dim=-1)


class WideBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, time_channels: int, stride: int = 1,
                 activate_before_residual: bool = False):
        super().__init__()
        self.activate_before_residual = activate_before_residual
        self.init_bn = _norm_relu(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn_2 = _norm_relu(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.time_emb = nn.Sequential(nn.SiLU(), nn.Linear(time_channels, planes))

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        if self.activate_before_residual:
            x = self.init_bn(x)
            h = x
        else:
            h = self.init_bn(x)
        h = self.conv1(h) + self.time_emb(temb)[:, :, None, None]
        h = self.conv2(self.bn_2(h))
        if h.shape[1] != x.shape[1]:
            # Shape change: average-pool the shortcut and pad it with zero channels (no 1x1 projection).
            stride = x.shape[-1] // h.shape[-1]
            x = F.avg_pool2d(x, stride, stride)
            x = F.pad(x, (0, 0, 0, 0, 0, h.shape[1] - x.shape[1]))
        return h + x


class NoiseConditionalWRN(nn.Module):
    def __init__(self, depth: int = 28, widen: int = 10, classes: int = 10, in_channels: int = 3):
        super().__init__()
        blocks = (depth - 4) // 6
        time_channels = 512
        self.time_emb = FourierFeatures(time_channels // 4, scale=16)
        self.time_emb_mlp = nn.Sequential(nn.Linear(time_channels // 2, time_channels), nn.SiLU(),
                                          nn.Linear(time_channels, time_channels))
        self.init_conv = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.groups = nn.ModuleList()
        for g in range(3):
            group = nn.ModuleList()
            for b in range(blocks):
                group.append(WideBlock(widths[g] if b == 0 else widths[g + 1], widths[g + 1], time_channels,
                                       stride=2 if (b == 0 and g > 0) else 1,
                                       activate_before_residual=(b == 0 and g == 0)))
            self.groups.append(group)
        self.pre_pool_bn = _norm_relu(widths[3])
        self.final_linear = nn.Linear(widths[3], classes)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x: noisy images (any scale), c: (B,) noise conditioning (DDPM t/T, EDM ln sigma)."""
        n = x[0].numel()
        std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1 / math.sqrt(n))
        x = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / std
        temb = self.time_emb_mlp(self.time_emb(c))
        x = self.init_conv(x)
        for group in self.groups:
            for block in group:
                x = block(x, temb)
        x = self.pre_pool_bn(x).mean(dim=(2, 3))
        return self.final_linear(x)
