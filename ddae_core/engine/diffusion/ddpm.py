"""DDPM (VP) framework: 1-indexed linear-beta schedule, epsilon loss, ancestral and DDIM samplers (ddae-spec 2)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .base import Framework, NetFn


def _schedule(betas: torch.Tensor) -> dict[str, torch.Tensor]:
    alpha = 1 - betas
    alphabar = torch.cumsum(torch.log(alpha), dim=0).exp()  # float32 cumsum of logs, as the official code
    return {
        "beta": betas,
        "alphabar": alphabar,
        "sqrt_alphabar": alphabar.sqrt(),
        "sqrt_one_minus_alphabar": (1 - alphabar).sqrt(),
        "sqrt_beta": betas.sqrt(),
        "one_over_sqrt_alpha": 1 / alpha.sqrt(),
        "beta_over_sqrt_one_minus_alphabar": betas / (1 - alphabar).sqrt(),
    }


class DDPM(Framework):
    """Timesteps are integers 1..T (0 is the clean image); the network sees t/T."""

    name = "ddpm"
    default_sampler = "ddim"
    samplers = ("ddim", "ddpm")

    def __init__(self, n_T: int = 1000, betas: tuple[float, float] = (1e-4, 0.02), time_input: str = "fraction"):
        self.n_T = int(n_T)
        self.step_index_input = time_input == "index"    # config.TIME_INPUTS: the network sees t - 1, not t / T
        beta_lo, beta_hi = float(betas[0]), float(betas[1])
        train_betas = torch.cat([torch.zeros(1), torch.linspace(beta_lo, beta_hi, self.n_T)])
        self.train = _schedule(train_betas)
        # The official DDIM sampler uses its own schedule: T+1 betas, no zero prepended (ddae-spec 2.4).
        self.ddim = _schedule(torch.linspace(beta_lo, beta_hi, self.n_T + 1))

    # Noise levels.
    @property
    def min_timestep(self) -> int:
        return 0

    @property
    def max_timestep(self) -> int:
        return self.n_T

    default_probe_timesteps = (1, 11, 21)
    default_feature_timestep = 11

    def classifier_levels(self) -> list[int]:
        step = max(1, self.n_T // 20)
        return list(range(1, self.n_T + 1, step))[:20]

    def sigma_equivalent(self, timestep: int) -> float:
        ab = float(self.train["alphabar"][timestep])
        return ((1 - ab) / ab) ** 0.5

    def describe_timestep(self, timestep: int) -> str:
        return f"t={timestep}"

    def time_input(self, timestep: torch.Tensor) -> torch.Tensor:
        if self.step_index_input:
            return timestep.float() - 1
        return timestep.float() / self.n_T

    def _time_input_at(self, step: int, n: int, device) -> torch.Tensor:
        """The (n,) time input of the samplers' step (t / T rounded once, as the official samplers)."""
        return torch.full((n,), step - 1.0 if self.step_index_input else step / self.n_T, device=device)

    def sample_training_timesteps(self, n: int, device) -> torch.Tensor:
        return torch.randint(1, self.n_T + 1, (n,), device=device)

    # Forward process.
    def perturb(self, x: torch.Tensor, timestep: torch.Tensor, noise: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x in [-1, 1] -> (noisy image, network input, network time input)."""
        s = self.on(x.device, self.train)
        x_t = s["sqrt_alphabar"][timestep].view(-1, 1, 1, 1) * x \
            + s["sqrt_one_minus_alphabar"][timestep].view(-1, 1, 1, 1) * noise
        return x_t, x_t, self.time_input(timestep)

    def denoised(self, net_out: torch.Tensor, noisy: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        s = self.on(noisy.device, self.train)
        sa = s["sqrt_alphabar"][timestep].view(-1, 1, 1, 1)
        sm = s["sqrt_one_minus_alphabar"][timestep].view(-1, 1, 1, 1)
        return (noisy - sm * net_out.float()) / sa

    def loss(self, net: NetFn, x: torch.Tensor, aug_label: torch.Tensor | None = None) -> torch.Tensor:
        timestep = self.sample_training_timesteps(x.shape[0], x.device)
        noise = torch.randn_like(x)
        _, net_in, time_in = self.perturb(x, timestep, noise)
        return F.mse_loss(net(net_in, time_in, aug_label).float(), noise)

    # Sampling.
    def _eps_and_x0(self, net: NetFn, x: torch.Tensor, time_in: torch.Tensor, alphabar: torch.Tensor):
        eps = net(x, time_in, None).float()
        x0 = ((x - (1 - alphabar).sqrt() * eps) / alphabar.sqrt()).clamp(-1, 1)
        eps = (x - alphabar.sqrt() * x0) / (1 - alphabar).sqrt()
        return eps, x0

    def sample(self, net: NetFn, shape: tuple[int, ...], device, sampler: str | None = None,
               steps: int | None = None, eta: float = 0.0, generator: torch.Generator | None = None,
               callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
        sampler = sampler or self.default_sampler
        x = torch.randn(shape, device=device, generator=generator)
        n = shape[0]
        if sampler == "ddpm":
            s = self.on(device, self.train)
            for done, i in enumerate(range(self.n_T, 0, -1)):
                time_in = self._time_input_at(i, n, device)
                eps, _ = self._eps_and_x0(net, x, time_in, s["alphabar"][i])
                mean = s["one_over_sqrt_alpha"][i] * (x - s["beta_over_sqrt_one_minus_alphabar"][i] * eps)
                z = torch.randn(shape, device=device, generator=generator) if i > 1 else 0
                x = mean + s["sqrt_beta"][i] * z
                if callback:
                    callback(done + 1, self.n_T)
            return x
        if sampler != "ddim":
            raise ValueError(f"unknown DDPM sampler {sampler!r}")
        steps = steps or 100
        s = self.on(device, self.ddim)
        grid = list(range(1, self.n_T + 1, max(1, self.n_T // steps)))[::-1] + [0]
        for done, (t, t_next) in enumerate(zip(grid[:-1], grid[1:])):
            time_in = self._time_input_at(t, n, device)
            a, a_next = s["alphabar"][t], s["alphabar"][t_next]
            eps, x0 = self._eps_and_x0(net, x, time_in, a)
            c1 = eta * ((1 - a / a_next) * (1 - a_next) / (1 - a)).sqrt()
            c2 = (1 - a_next - c1 ** 2).sqrt()
            z = torch.randn(shape, device=device, generator=generator) if t_next > 0 and eta > 0 else 0
            x = a_next.sqrt() * x0 + c2 * eps + c1 * z
            if callback:
                callback(done + 1, len(grid) - 1)
        return x
