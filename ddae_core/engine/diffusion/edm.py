"""EDM (VE) framework: preconditioned denoiser, log-normal sigma, Heun sampler (ddae-spec 3).

"Timesteps" are indices into the reversed sampling grid of `index_steps` (18) sigmas with 0 appended:
index 0 is sigma = 0, index 1 is sigma_min, index 18 is sigma_max (ddae-spec 3.6).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .augment import AugmentPipe
from .base import Framework, NetFn


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float) -> torch.Tensor:
    """The decreasing sampler grid sigma_0 = sigma_max ... sigma_{steps-1} = sigma_min, then 0 (float64).

    Endpoints are raised to 1/rho in float32 as the official code does, so sigma_0 = 80.000018.
    """
    inv_rho = torch.tensor(1.0, dtype=torch.float32) / torch.tensor(rho, dtype=torch.float32)
    hi = torch.tensor(sigma_max, dtype=torch.float32) ** inv_rho
    lo = torch.tensor(sigma_min, dtype=torch.float32) ** inv_rho
    i = torch.arange(steps, dtype=torch.float64)
    sigmas = (hi.double() + i / (steps - 1) * (lo.double() - hi.double())) ** float(rho)
    return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)])


class EDM(Framework):
    name = "edm"
    default_sampler = "heun"
    samplers = ("heun",)
    default_probe_timesteps = (3, 4, 5)
    default_feature_timestep = 4
    min_timestep = 1

    def __init__(self, sigma_data: float = 0.5, p_mean: float = -1.2, p_std: float = 1.2,
                 sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                 S_min: float = 0.01, S_max: float = 1.0, S_noise: float = 1.007,
                 augment_prob: float = 0.0, index_steps: int = 18):
        self.sigma_data = float(sigma_data)
        self.p_mean, self.p_std = float(p_mean), float(p_std)
        self.sigma_min, self.sigma_max, self.rho = float(sigma_min), float(sigma_max), float(rho)
        self.S_min, self.S_max, self.S_noise = float(S_min), float(S_max), float(S_noise)
        self.index_steps = int(index_steps)
        self.index_sigmas = karras_sigmas(self.index_steps, self.sigma_min, self.sigma_max, self.rho).flip(0)
        self.augment = AugmentPipe(p=augment_prob) if augment_prob > 0 else None

    @property
    def max_timestep(self) -> int:
        return self.index_steps

    def classifier_levels(self) -> list[int]:
        return list(range(1, self.index_steps + 1))

    def sigma(self, timestep: int) -> float:
        return float(self.index_sigmas[timestep])

    def sigma_equivalent(self, timestep: int) -> float:
        return self.sigma(timestep)

    def describe_timestep(self, timestep: int) -> str:
        return f"sigma={self.sigma(timestep):.4g}"

    # Preconditioning.
    def _coefficients(self, sigma: torch.Tensor):
        sd = self.sigma_data
        c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
        c_out = sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
        c_in = 1 / (sigma ** 2 + sd ** 2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip, c_out, c_in, c_noise

    def sigmas_for(self, timestep: torch.Tensor) -> torch.Tensor:
        return self.index_sigmas.to(timestep.device)[timestep]

    def perturb(self, x: torch.Tensor, timestep: torch.Tensor, noise: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x in [-1, 1] -> (noisy image x + sigma*noise, network input c_in*noisy, time input ln(sigma)/4)."""
        sigma = self.sigmas_for(timestep).float().view(-1, 1, 1, 1)
        noisy = x + sigma * noise
        _, _, c_in, c_noise = self._coefficients(sigma)
        return noisy, c_in * noisy, c_noise.flatten()

    def denoised(self, net_out: torch.Tensor, noisy: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        sigma = self.sigmas_for(timestep).float().view(-1, 1, 1, 1)
        c_skip, c_out, _, _ = self._coefficients(sigma)
        return c_skip * noisy + c_out * net_out.float()

    def denoise_at_sigma(self, net: NetFn, noisy: torch.Tensor, sigma: torch.Tensor,
                         aug_label: torch.Tensor | None = None) -> torch.Tensor:
        noisy = noisy.float()
        sigma = sigma.float().reshape(-1, 1, 1, 1)
        c_skip, c_out, c_in, c_noise = self._coefficients(sigma)
        return c_skip * noisy + c_out * net(c_in * noisy, c_noise.flatten(), aug_label).float()

    def loss(self, net: NetFn, x: torch.Tensor, aug_label: torch.Tensor | None = None) -> torch.Tensor:
        if self.augment is not None:
            x, aug_label = self.augment(x)
        sigma = (torch.randn(x.shape[0], 1, 1, 1, device=x.device) * self.p_std + self.p_mean).exp()
        noisy = x + torch.randn_like(x) * sigma
        weight = (sigma ** 2 + self.sigma_data ** 2) / (sigma * self.sigma_data) ** 2
        return (weight * (self.denoise_at_sigma(net, noisy, sigma, aug_label) - x) ** 2).mean()

    def sample(self, net: NetFn, shape: tuple[int, ...], device, sampler: str | None = None,
               steps: int | None = None, eta: float = 0.0, generator: torch.Generator | None = None,
               callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
        if (sampler or "heun") != "heun":
            raise ValueError(f"unknown EDM sampler {sampler!r}")
        steps = steps or 18
        sigmas = karras_sigmas(steps, self.sigma_min, self.sigma_max, self.rho).to(device)
        gamma_max = (math.sqrt(2) - 1) * eta
        x = torch.randn(shape, device=device, generator=generator).double() * sigmas[0]

        def slope(x_: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            denoised = self.denoise_at_sigma(net, x_, sigma.expand(shape[0])).double().clamp(-1, 1)
            return (x_ - denoised) / sigma

        for i in range(steps):
            t_cur, t_next = sigmas[i], sigmas[i + 1]
            gamma = gamma_max if self.S_min <= float(t_cur) <= self.S_max else 0.0
            t_hat = t_cur * (1 + gamma)
            x_hat = x
            if gamma > 0:
                z = torch.randn(shape, device=device, generator=generator).double()
                x_hat = x + (t_hat ** 2 - t_cur ** 2).sqrt() * self.S_noise * z
            # Euler step, then Heun's correction except on the last step (to sigma = 0).
            d = slope(x_hat, t_hat)
            x = x_hat + (t_next - t_hat) * d
            if i < steps - 1:
                x = x_hat + (t_next - t_hat) * (0.5 * d + 0.5 * slope(x, t_next))
            if callback:
                callback(i + 1, steps)
        return x.float()
