"""The DDAE UNet with named feature taps (ddae-spec section 4).

Taps, in network order:
- `enc_1` ... `enc_K`: encoder ResAttBlock outputs (our own; resamplers are not counted),
- `mid`: the middle block output (our own),
- `out_1` ... `out_M`: decoder ResAttBlock outputs, numbered exactly as the official code does
  (1-based from the lowest resolution, upsamplers skipped, after attention and before upsampling).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import NORM_EPS, Downsample, MiddleBlock, ResampleRes, ResAttBlock, TimeEmbedding, Upsample, group_norm
from .taps import NamedTaps


def tap_names(network: dict) -> list[str]:
    """Tap names in network order for a network config, without building it."""
    levels, n_blocks = len(network["ch_mults"]), int(network["n_blocks"])
    return ([f"enc_{i}" for i in range(1, levels * n_blocks + 1)] + ["mid"]
            + [f"out_{i}" for i in range(1, levels * (n_blocks + 1) + 1)])


class UNet(NamedTaps, nn.Module):
    """The official UNet; the arguments after `attn_channels_per_head` switch it to other codebases' variants
    of the same layout: diffusers' DDPM (norm_eps 1e-6, out_norm_groups 32, downsample_padding asymmetric) and
    EDM's DDPM++ (those eps and groups, skip_scale sqrt(1/2), resample_shortcut, decoder_attn `last`: only
    the last decoder block of a level with attention has it)."""

    def __init__(self, image_shape: Sequence[int] = (3, 32, 32), n_channels: int = 128,
                 ch_mults: Sequence[int] = (1, 2, 2, 2), is_attn: Sequence[bool] = (False, True, False, False),
                 dropout: float = 0.1, n_blocks: int = 2, use_res_for_updown: bool = False, augment_dim: int = 0,
                 attn_channels_per_head: int | None = None, norm_eps: float = NORM_EPS, out_norm_groups: int = 8,
                 downsample_padding: str = "symmetric", skip_scale: float = 1.0, resample_shortcut: bool = False,
                 decoder_attn: str = "all"):
        super().__init__()
        in_ch = image_shape[0]
        time_channels = 4 * n_channels
        self.image_proj = nn.Conv2d(in_ch, n_channels, 3, padding=1)
        self.time_emb = TimeEmbedding(time_channels, augment_dim)

        def resampler(channels: int, up: bool) -> nn.Module:
            if use_res_for_updown:
                return ResampleRes(channels, time_channels, dropout, up=up, norm_eps=norm_eps, skip_scale=skip_scale,
                                   resample_shortcut=resample_shortcut)
            return Upsample(channels) if up else Downsample(channels, downsample_padding)

        # Encoder: every module's output goes on the skip stack, resamplers included.
        down: list[nn.Module] = []
        skip_channels = [n_channels]
        channels = n_channels
        levels = len(ch_mults)
        for level, mult in enumerate(ch_mults):
            out_channels = n_channels * mult
            for _ in range(n_blocks):
                down.append(ResAttBlock(channels, out_channels, time_channels, is_attn[level], dropout,
                                        attn_channels_per_head, norm_eps, skip_scale))
                channels = out_channels
                skip_channels.append(channels)
            if level < levels - 1:
                down.append(resampler(channels, up=False))
                skip_channels.append(channels)
        self.down = nn.ModuleList(down)
        self.middle = MiddleBlock(channels, time_channels, dropout, attn_channels_per_head, norm_eps, skip_scale)

        # Decoder: n_blocks + 1 blocks per level, each concatenating one skip (current first, skip second).
        up: list[nn.Module] = []
        for level in reversed(range(levels)):
            out_channels = n_channels * ch_mults[level]
            for block in range(n_blocks + 1):
                has_attn = is_attn[level] and (decoder_attn == "all" or block == n_blocks)
                up.append(ResAttBlock(channels + skip_channels.pop(), out_channels, time_channels,
                                      has_attn, dropout, attn_channels_per_head, norm_eps, skip_scale))
                channels = out_channels
            if level > 0:
                up.append(resampler(channels, up=True))
        assert not skip_channels
        self.up = nn.ModuleList(up)

        self.norm = group_norm(channels, groups=out_norm_groups, eps=norm_eps)
        self.final = nn.Conv2d(channels, in_ch, 3, padding=1)

        self.tap_names, self.tap_channels = self._name_taps()
        assert self.tap_names == tap_names({"ch_mults": ch_mults, "n_blocks": n_blocks})
        self.index_taps()

    def _name_taps(self) -> tuple[list[str], dict[str, int]]:
        names, channels = [], {}
        enc = [m for m in self.down if isinstance(m, ResAttBlock)]
        for i, m in enumerate(enc, 1):
            names.append(f"enc_{i}")
            channels[f"enc_{i}"] = m.res.conv1.out_channels
        names.append("mid")
        channels["mid"] = self.middle.res2.conv1.out_channels
        dec = [m for m in self.up if isinstance(m, ResAttBlock)]
        for i, m in enumerate(dec, 1):
            names.append(f"out_{i}")
            channels[f"out_{i}"] = m.res.conv1.out_channels
        return names, channels

    @property
    def decoder_taps(self) -> list[str]:
        return [n for n in self.tap_names if n.startswith("out_")]


    def forward(self, x: torch.Tensor, t: torch.Tensor, aug_label: torch.Tensor | None = None) -> torch.Tensor:
        out, _ = self.forward_taps(x, t, aug_label)
        return out

    def forward_taps(self, x: torch.Tensor, t: torch.Tensor, aug_label: torch.Tensor | None = None,
                     taps: Iterable[str] = (), need_output: bool = True
                     ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """Run the network, collecting the named taps (unpooled (B, C, H, W)).

        With need_output=False the pass stops after the deepest requested tap and returns None as output.
        """
        wanted = self.check_taps(taps)
        acts: dict[str, torch.Tensor] = {}

        def done() -> bool:
            return not need_output and len(acts) == len(wanted)

        if t.dim() == 0:
            t = t[None]
        emb = self.time_emb(t.expand(x.shape[0]) if t.numel() == 1 else t, aug_label)
        x = self.image_proj(x)
        skips = [x]
        enc_index = 0
        for m in self.down:
            x = m(x, emb)
            skips.append(x)
            if isinstance(m, ResAttBlock):
                enc_index += 1
                name = f"enc_{enc_index}"
                if name in wanted:
                    acts[name] = x
                    if done():
                        return None, acts
        x = self.middle(x, emb)
        if "mid" in wanted:
            acts["mid"] = x
        if done():
            return None, acts
        dec_index = 0
        for m in self.up:
            if isinstance(m, ResAttBlock):
                x = m(torch.cat((x, skips.pop()), dim=1), emb)
                dec_index += 1
                name = f"out_{dec_index}"
                if name in wanted:
                    acts[name] = x
                    if done():
                        return None, acts
            else:
                x = m(x, emb)
        return self.final(F.silu(self.norm(x))), acts
