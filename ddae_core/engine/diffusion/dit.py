"""DiT's diffusion, as far as a DDAE needs it: the forward process of its latents and the clean-latent estimate.

Timesteps are 0-indexed, t = 0..n_T-1 (1000 linear betas 1e-4..0.02, computed in float64 as DiT's
`create_diffusion(None)` does), and the network sees t itself. Studio's DDPM timesteps are 1-indexed
(0 is the clean image): DiT's t = 121 is the noise level of DDPM's t = 122 under the same betas.
Pre-training and sampling a DiT are not Studio's: a DiT comes in by import (importers/dit.py).
"""

from __future__ import annotations

import math

import torch

from ..errors import UserError
from .base import Framework, NetFn

N_T = 1000
BETAS = (1e-4, 0.02)
CONVENTION = "0-indexed"     # what grid axes say of a DiT run's timesteps (DDPM: 1-indexed)


def dit_alphabar(n_T: int = N_T, betas: tuple[float, float] = BETAS) -> torch.Tensor:
    """(n_T,) float64 cumulative products of 1 - beta at t = 0..n_T-1: DiT's linear schedule (its betas scaled by
    1000 / n_T, so that other lengths keep the same curve)."""
    scale = 1000 / n_T
    beta = torch.linspace(scale * betas[0], scale * betas[1], n_T, dtype=torch.float64)
    return torch.cumprod(1 - beta, dim=0)


def dit_log_snr(timestep: int, n_T: int = N_T, betas: tuple[float, float] = BETAS) -> float:
    """log(alphabar_t / (1 - alphabar_t)) at DiT's 0-indexed timestep t."""
    ab = float(dit_alphabar(n_T, betas)[timestep])
    return math.log(ab / (1 - ab))


class DiTDiffusion(Framework):
    """Timesteps 0..n_T-1; the network sees the integer step and predicts the noise (its first C channels)."""

    name = "dit"
    samplers: tuple[str, ...] = ()
    default_probe_timesteps = (41, 81, 121, 161, 201)
    default_feature_timestep = 121     # the official CIFAR-10 probe's (Tiny-ImageNet's: 81)
    min_timestep = 0

    def __init__(self, n_T: int = N_T, betas: tuple[float, float] = BETAS):
        self.n_T = int(n_T)
        self.max_timestep = self.n_T - 1
        alphabar = dit_alphabar(self.n_T, (float(betas[0]), float(betas[1])))
        self.table = {"alphabar": alphabar.float(), "sqrt_alphabar": alphabar.sqrt().float(),
                      "sqrt_one_minus_alphabar": (1 - alphabar).sqrt().float()}

    def classifier_levels(self) -> list[int]:
        step = max(1, self.n_T // 20)
        return list(range(0, self.n_T, step))[:20]

    def sigma_equivalent(self, timestep: int) -> float:
        ab = float(self.table["alphabar"][timestep])
        return ((1 - ab) / ab) ** 0.5

    def describe_timestep(self, timestep: int) -> str:
        return f"t={timestep}"

    def time_input(self, timestep: torch.Tensor) -> torch.Tensor:
        return timestep

    def sample_training_timesteps(self, n: int, device) -> torch.Tensor:
        return torch.randint(0, self.n_T, (n,), device=device)

    def perturb(self, x: torch.Tensor, timestep: torch.Tensor, noise: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Latents x -> (noisy latents, network input, network time input): DiT's q_sample."""
        s = self.on(x.device, self.table)
        x_t = s["sqrt_alphabar"][timestep].view(-1, 1, 1, 1) * x \
            + s["sqrt_one_minus_alphabar"][timestep].view(-1, 1, 1, 1) * noise
        return x_t, x_t, self.time_input(timestep)

    def denoised(self, net_out: torch.Tensor, noisy: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """The clean-latent estimate from the predicted noise (the first C channels of a learn_sigma output)."""
        s = self.on(noisy.device, self.table)
        eps = net_out[:, : noisy.shape[1]].float()
        return (noisy - s["sqrt_one_minus_alphabar"][timestep].view(-1, 1, 1, 1) * eps) \
            / s["sqrt_alphabar"][timestep].view(-1, 1, 1, 1)

    def loss(self, net: NetFn, x: torch.Tensor, aug_label: torch.Tensor | None = None) -> torch.Tensor:
        raise UserError("Studio does not pre-train DiT; import a trained one (ddae import --format dit).")

    def sample(self, *args, **kwargs) -> torch.Tensor:
        raise UserError("Studio does not sample from DiT; its runs are probed, classified and fine-tuned.")
