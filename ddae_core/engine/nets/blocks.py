"""UNet building blocks, shaped so that official DDAE state dicts load key for key (ddae-spec 4.3, 5)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DOWNSAMPLE_PADDINGS, NORM_EPS


def group_norm(channels: int, groups: int = 32, eps: float = NORM_EPS) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=eps)


# Longest token sequence attended with explicit matmuls (below); past it the (L, L) scores grow too large.
MATMUL_ATTENTION_MAX_TOKENS = 1024


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over (B, heads, L, d).

    SDPA everywhere except bf16 forward-only passes on a CPU: there the flash kernel runs at half the speed
    of two bf16 matmuls and a softmax (6.8 vs 3.5 ms for 64 x 256 tokens x 64 channels on an AVX512-BF16
    core, the tiny UNet's 16x16 level; same error against fp32, 4e-3), which is 7% of a feature
    extraction. Training keeps SDPA, whose backward does not store the (L, L) probabilities.
    """
    if (q.device.type == "cpu" and q.dtype == torch.bfloat16 and not torch.is_grad_enabled()
            and q.shape[-2] <= MATMUL_ATTENTION_MAX_TOKENS):
        scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-1, -2))
        return torch.matmul(scores.softmax(-1), v)
    return F.scaled_dot_product_attention(q, k, v)


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of a float time input, optional augmentation label, then a 2-layer MLP.

    `time_channels` is the MLP width (4 x n_channels); the sinusoid has time_channels/4 dims.
    """

    def __init__(self, time_channels: int, augment_dim: int = 0):
        super().__init__()
        self.time_channels = time_channels
        sinusoid_dim = time_channels // 4
        # Parameter order (aug_emb, lin1, lin2) matches the official state dict.
        self.aug_emb = nn.Linear(augment_dim, sinusoid_dim, bias=False) if augment_dim > 0 else None
        self.lin1 = nn.Linear(sinusoid_dim, time_channels)
        self.lin2 = nn.Linear(time_channels, time_channels)

    def sinusoid(self, t: torch.Tensor) -> torch.Tensor:
        half = self.time_channels // 8
        exponent = torch.arange(half, dtype=torch.float32, device=t.device) * (-math.log(10_000) / (half - 1))
        angles = t.float()[:, None] * torch.exp(exponent)[None, :]
        return torch.cat((angles.sin(), angles.cos()), dim=1)

    def forward(self, t: torch.Tensor, aug_label: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.sinusoid(t)
        if self.aug_emb is not None and aug_label is not None:
            emb = emb + self.aug_emb(aug_label)
        return self.lin2(F.silu(self.lin1(emb)))


class Resample(nn.Module):
    """Parameter-free nearest x2 upsampling or 2x2 average pooling (inside BigGAN-style blocks)."""

    def __init__(self, up: bool):
        super().__init__()
        self.up = up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.up else F.avg_pool2d(x, 2)


class ResidualBlock(nn.Module):
    """GN-SiLU-conv, + time bias, GN-SiLU-dropout-conv, + shortcut; optionally resampling (BigGAN style).

    EDM's DDPM++ (SongUNet) variant: the sum is scaled by `skip_scale` (sqrt(1/2)), and with `resample_shortcut`
    a resampling block's shortcut is a 1x1 convolution of the resampled input even where channels are equal.
    """

    def __init__(self, in_channels: int, out_channels: int, time_channels: int, dropout: float,
                 resample: str | None = None, norm_eps: float = NORM_EPS, skip_scale: float = 1.0,
                 resample_shortcut: bool = False):
        super().__init__()
        self.skip_scale = skip_scale
        self.norm1 = group_norm(in_channels, eps=norm_eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels, eps=norm_eps)
        self.conv2 = nn.Sequential(nn.Dropout(dropout), nn.Conv2d(out_channels, out_channels, 3, padding=1))
        project = in_channels != out_channels or (resample is not None and resample_shortcut)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if project else nn.Identity()
        self.time_emb = nn.Sequential(nn.SiLU(), nn.Linear(time_channels, out_channels))
        self.resample = Resample(up=resample == "up") if resample else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(x))
        if self.resample is not None:
            h, x = self.resample(h), self.resample(x)
        h = self.conv1(h)
        h = h + self.time_emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        out = h + self.shortcut(x)
        return out * self.skip_scale if self.skip_scale != 1 else out


class AttentionBlock(nn.Module):
    """Self-attention over H*W positions with a residual connection; Linear layers act on (B, HW, C).

    `channels_per_head` None is one head over all C channels (every official config). Otherwise, as the
    official `attn_channels_per_head`, there are C // channels_per_head heads, the projection's output holds
    each head's [q|k|v] in turn, and the heads' outputs (heads * channels_per_head wide) project back to C.
    """

    def __init__(self, channels: int, channels_per_head: int | None = None, norm_eps: float = NORM_EPS,
                 skip_scale: float = 1.0):
        super().__init__()
        self.skip_scale = skip_scale
        self.head_channels = channels if channels_per_head is None else int(channels_per_head)
        self.heads = channels // self.head_channels
        if self.heads < 1:
            raise ValueError(f"{self.head_channels} channels per head is more than the block's {channels} channels")
        inner = self.heads * self.head_channels
        self.norm = group_norm(channels, eps=norm_eps)
        self.projection = nn.Linear(channels, 3 * inner)
        self.output = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).reshape(b, c, h * w).transpose(1, 2)
        qkv = self.projection(tokens).view(b, h * w, self.heads, 3 * self.head_channels).transpose(1, 2)
        q, k, v = qkv.chunk(3, dim=-1)
        # The official code scales q and k by d^-1/4 each; SDPA's 1/sqrt(d) on the logits is the same product.
        attended = attention(q, k, v).transpose(1, 2).reshape(b, h * w, -1)
        out = self.output(attended).transpose(1, 2).reshape(b, c, h, w) + x
        return out * self.skip_scale if self.skip_scale != 1 else out


class ResAttBlock(nn.Module):
    """A residual block followed by attention where this resolution has it; the unit that feature taps read."""

    def __init__(self, in_channels: int, out_channels: int, time_channels: int, has_attn: bool, dropout: float,
                 attn_channels_per_head: int | None = None, norm_eps: float = NORM_EPS, skip_scale: float = 1.0):
        super().__init__()
        self.res = ResidualBlock(in_channels, out_channels, time_channels, dropout, norm_eps=norm_eps,
                                 skip_scale=skip_scale)
        self.attn = AttentionBlock(out_channels, attn_channels_per_head, norm_eps, skip_scale) if has_attn \
            else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, emb))


class MiddleBlock(nn.Module):
    def __init__(self, channels: int, time_channels: int, dropout: float, attn_channels_per_head: int | None = None,
                 norm_eps: float = NORM_EPS, skip_scale: float = 1.0):
        super().__init__()
        self.res1 = ResidualBlock(channels, channels, time_channels, dropout, norm_eps=norm_eps, skip_scale=skip_scale)
        self.attn = AttentionBlock(channels, attn_channels_per_head, norm_eps, skip_scale)
        self.res2 = ResidualBlock(channels, channels, time_channels, dropout, norm_eps=norm_eps, skip_scale=skip_scale)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.res2(self.attn(self.res1(x, emb)), emb)


class Downsample(nn.Module):
    """Strided 3x3 convolution (the DDPM network).

    `padding` symmetric: one zero pixel on every side (the official code); asymmetric: one after each row and
    column only (Ho et al.'s TensorFlow code, as diffusers' `downsample_padding: 0`), which shifts every output
    pixel's window by one input pixel.
    """

    def __init__(self, channels: int, padding: str = "symmetric"):
        super().__init__()
        if padding not in DOWNSAMPLE_PADDINGS:
            raise ValueError(f"downsample padding must be one of {DOWNSAMPLE_PADDINGS} (got {padding!r})")
        self.pad_after = padding == "asymmetric"
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0 if self.pad_after else 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        if self.pad_after:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest x2 then a 3x3 convolution (the DDPM network)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResampleRes(nn.Module):
    """BigGAN-style resampling residual block (the DDPM++ network); state dict keys live under `op.`."""

    def __init__(self, channels: int, time_channels: int, dropout: float, up: bool, norm_eps: float = NORM_EPS,
                 skip_scale: float = 1.0, resample_shortcut: bool = False):
        super().__init__()
        self.op = ResidualBlock(channels, channels, time_channels, dropout, resample="up" if up else "down",
                                norm_eps=norm_eps, skip_scale=skip_scale, resample_shortcut=resample_shortcut)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.op(x, emb)
