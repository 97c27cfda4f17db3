"""The Diffusion Transformer (Peebles & Xie's DiT), written here, with the state-dict layout of the public
DiT checkpoints (`DiT-XL-2-256x256.pt` and the other configs of the same code) and named feature taps.

Taps, in network order: `layer-0` ... `layer-{depth-1}`, the output of each transformer block, as the DDAE
code hooks them (DiT/linear.py). A tap is returned as (B, hidden, h, w), the tokens laid back on their
patch grid, so that pooling over the last two axes is the official mean over the token sequence.

The network predicts the noise (and, with learn_sigma, the variance: 2x the input channels) of a latent at
an integer timestep 0..n_T-1, conditioned on a class label; label `num_classes` is the null class that
classifier-free guidance dropout trained, which evaluation uses (the paper probes DiT unconditionally).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .taps import NamedTaps

FREQUENCY_DIM = 256       # the sinusoidal timestep embedding's width before its MLP
LAYER_NORM_EPS = 1e-6

# The configs of the DiT code: (depth, hidden size, heads); the patch size is the suffix (DiT-XL/2: patch 2).
SIZES = {"XL": (28, 1152, 16), "L": (24, 1024, 16), "B": (12, 768, 12), "S": (12, 384, 6)}


def tap_names(depth: int) -> list[str]:
    return [f"layer-{i}" for i in range(depth)]


def timestep_embedding(t: torch.Tensor, dim: int = FREQUENCY_DIM, max_period: float = 10000.0) -> torch.Tensor:
    """(N,) timesteps (integers, or fractions) -> (N, dim): cosines of the geometric frequencies, then sines."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def sincos_position_grid(dim: int, grid: int) -> torch.Tensor:
    """(grid*grid, dim) fixed 2-D position codes: the first half encodes the column, the second the row,
    each as sines then cosines of positions times 1/10000^(k/(dim/4)); computed in float64 as DiT does."""
    if dim % 4:
        raise ValueError(f"hidden size {dim} must be a multiple of 4 for 2-D position codes")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    coords = torch.arange(grid, dtype=torch.float64)
    row, col = torch.meshgrid(coords, coords, indexing="ij")

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1, 1) * omega[None]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)

    return torch.cat([encode(col), encode(row)], dim=1).float()


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_channels: int, hidden_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden_size, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)        # (N, tokens, hidden), row-major tokens


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(FREQUENCY_DIM, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t))


class LabelEmbedder(nn.Module):
    """Class embeddings with one extra row, the null class (label = num_classes)."""

    def __init__(self, num_classes: int, hidden_size: int):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, hidden_size)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.embedding_table(labels)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class DiTBlock(nn.Module):
    """Attention and MLP, each behind a LayerNorm modulated (shift, scale) and gated by the conditioning
    (adaLN-Zero)."""

    def __init__(self, hidden_size: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=LAYER_NORM_EPS)
        self.attn = Attention(hidden_size, heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_a.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_a, scale_a))
        return x + gate_m.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_m, scale_m))


class FinalLayer(nn.Module):
    def __init__(self, hidden_size: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=LAYER_NORM_EPS)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class DiT(NamedTaps, nn.Module):
    """DiT over (in_channels, input_size, input_size) latents; argument names are those of the DiT code.

    `class_dropout_prob` only says that the null class was trained (it must be above 0: evaluation uses it).
    """

    def __init__(self, input_size: int = 32, patch_size: int = 2, in_channels: int = 4, hidden_size: int = 1152,
                 depth: int = 28, num_heads: int = 16, mlp_ratio: float = 4.0, class_dropout_prob: float = 0.1,
                 num_classes: int = 1000, learn_sigma: bool = True):
        super().__init__()
        if not class_dropout_prob > 0:
            raise ValueError("class_dropout_prob must be above 0: Studio evaluates DiT with the null class")
        self.in_channels, self.patch_size, self.num_classes = in_channels, patch_size, num_classes
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.grid = input_size // patch_size
        self.x_embedder = PatchEmbed(patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size)
        self.register_buffer("pos_embed", sincos_position_grid(hidden_size, self.grid)[None])
        self.blocks = nn.ModuleList(DiTBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth))
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
        self.tap_names = tap_names(depth)
        self.tap_channels = {name: hidden_size for name in self.tap_names}
        self.index_taps()
        self.initialize()

    def initialize(self) -> None:
        """DiT's initialisation: Xavier-uniform linears, zeroed adaLN and output layers (adaLN-Zero)."""
        for name, m in self.named_modules():
            if not isinstance(m, nn.Linear):
                continue
            nn.init.zeros_(m.bias)
            if name.endswith("adaLN_modulation.1") or name == "final_layer.linear":
                nn.init.zeros_(m.weight)
            elif name.startswith("t_embedder."):
                nn.init.normal_(m.weight, std=0.02)
            else:
                nn.init.xavier_uniform_(m.weight)
        proj = self.x_embedder.proj           # as a linear layer over each patch's flattened values
        nn.init.xavier_uniform_(proj.weight.data.view(proj.weight.shape[0], -1))
        nn.init.zeros_(proj.bias.data if proj.bias is not None else torch.empty(0))
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)

    @property
    def null_class(self) -> int:
        return self.num_classes

    @property
    def decoder_taps(self) -> list[str]:
        """Every block: a transformer has no encoder/decoder split, so `all` layers are all of them."""
        return list(self.tap_names)


    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(N, tokens, p*p*C) -> (N, C, H, W)."""
        n, p, c, g = x.shape[0], self.patch_size, self.out_channels, self.grid
        return x.reshape(n, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(n, c, g * p, g * p)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out, _ = self.forward_taps(x, t, y)
        assert out is not None
        return out

    def forward_taps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                     taps: Iterable[str] = (), need_output: bool = True
                     ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """Run the network on latents x at timesteps t (N,) with labels y (None: the null class), collecting the
        named taps as (N, hidden, h, w); with need_output=False the pass stops after the deepest one."""
        wanted = self.check_taps(taps)
        n = x.shape[0]
        t = t.reshape(-1).expand(n) if t.numel() == 1 else t
        if y is None:
            y = torch.full((n,), self.null_class, dtype=torch.long, device=x.device)
        c = self.t_embedder(t) + self.y_embedder(y)
        h = self.x_embedder(x) + self.pos_embed
        acts: dict[str, torch.Tensor] = {}
        for name, block in zip(self.tap_names, self.blocks):
            h = block(h, c)
            if name in wanted:
                acts[name] = h.transpose(1, 2).reshape(n, -1, self.grid, self.grid)
                if not need_output and len(acts) == len(wanted):
                    return None, acts
        return self.unpatchify(self.final_layer(h, c)), acts
