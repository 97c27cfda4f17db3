"""One noise axis for every probe grid: the log signal-to-noise ratio of a family's own noise index (pure math).

Each family indexes its noise levels its own way; log-SNR = log(signal variance / noise variance) of the noisy
input, per unit of data variance, puts them on one axis (high: little noise):

- "ddpm": t = 1..n_T, Studio's 1-indexed steps (0 is the clean image), over n_T betas spaced linearly from
  beta_1 to beta_T; alphabar_t = prod_{s<=t} (1 - beta_s) and log-SNR = log(alphabar_t / (1 - alphabar_t)).
- "edm": the sigma index k = 1..steps into the reversed Karras sampling grid (1: sigma_min, steps: sigma_max),
  x + sigma * noise, so log-SNR = -2 log sigma (a DDPM step is the same as sigma = sqrt((1 - alphabar) / alphabar)).
- "dit": t = 0..n_T-1, 0-indexed as DiT's own diffusion code, over n_T linear betas (1000, 1e-4..0.02): DiT's t
  is DDPM's t + 1 on the same betas. DiT noises VAE latents, not pixels: its log-SNR is the schedule's.

No torch: the Run view, Compare and `ddae runs show` compute it from grid.json; the tests hold it against the
engine's own DDPM and EDM classes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FAMILIES = ("ddpm", "edm", "dit")
# What a family's noise index is called, and its first index (the lowest noise a grid may use).
INDEX_NAMES = {"ddpm": "t", "edm": "sigma index", "dit": "t"}
FIRST_INDEX = {"ddpm": 1, "edm": 1, "dit": 0}
FAMILY_NAMES = {"ddpm": "DDPM", "edm": "EDM", "dit": "DiT"}      # as the papers write them, for labels
DIT_SCHEDULE = {"n_T": 1000, "betas": (1e-4, 0.02)}     # DiT's linear schedule (its gaussian_diffusion defaults)


def _linear_log_snr(n_t: int, beta_lo: float, beta_hi: float, step: int) -> float:
    """log-SNR after `step` (1..n_t) of n_t linearly spaced betas, in float64 (log1p: exact near t = 1)."""
    spacing = (beta_hi - beta_lo) / (n_t - 1) if n_t > 1 else 0.0
    log_alphabar = math.fsum(math.log1p(-(beta_lo + s * spacing)) for s in range(step))
    return log_alphabar - math.log(-math.expm1(log_alphabar))


def edm_sigma(params: Mapping[str, Any], index: int) -> float:
    """Sigma at EDM index 1..steps: the Karras grid sigma_max^(1/rho) .. sigma_min^(1/rho), raised to rho."""
    steps, rho = int(params.get("steps", 18)), float(params["rho"])
    hi, lo = float(params["sigma_max"]) ** (1 / rho), float(params["sigma_min"]) ** (1 / rho)
    i = steps - index                               # position in the decreasing grid (0: sigma_max)
    return (hi + i / (steps - 1) * (lo - hi)) ** rho


def index_range(family: str, params: Mapping[str, Any]) -> tuple[int, int]:
    """(first, last) noise index a grid of this family may use."""
    if family == "edm":
        return 1, int(params.get("steps", 18))
    first = FIRST_INDEX[family]
    return first, first + int(params["n_T"]) - 1


def log_snr(family: str, params: Mapping[str, Any], index: int) -> float:
    """log-SNR (natural log) at a family's noise index; params: n_T and betas (ddpm, dit) or sigma_min, sigma_max,
    rho and steps (edm). An index outside the family's range raises ValueError naming it."""
    if family not in FAMILIES:
        raise ValueError(f"unknown diffusion family {family!r} (known: {', '.join(FAMILIES)})")
    lo, hi = index_range(family, params)
    if not lo <= int(index) <= hi:
        raise ValueError(f"{INDEX_NAMES[family]} {index} is outside {lo}..{hi} for {FAMILY_NAMES[family]}")
    if family == "edm":
        return -2.0 * math.log(edm_sigma(params, int(index)))
    beta_lo, beta_hi = (float(b) for b in params["betas"])
    if family == "dit":                             # DiT's code scales its linear betas by 1000 / n_T
        beta_lo, beta_hi = (b * 1000 / int(params["n_T"]) for b in (beta_lo, beta_hi))
    step = int(index) + 1 - FIRST_INDEX[family]     # how many betas have been applied
    return _linear_log_snr(int(params["n_T"]), beta_lo, beta_hi, step)


@dataclass(frozen=True)
class NoiseAxis:
    """A grid's noise schedule, enough to put its rows on the log-SNR axis; stored in grid.json as to_json()."""

    family: str
    params: tuple[tuple[str, Any], ...]          # sorted (name, value) pairs: hashable, comparable

    @classmethod
    def of(cls, family: str, **params: Any) -> NoiseAxis:
        clean = {k: (tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else v) for k, v in params.items()}
        return cls(family, tuple(sorted(clean.items())))

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def index_name(self) -> str:
        return INDEX_NAMES[self.family]

    def log_snr(self, index: int) -> float:
        return log_snr(self.family, self.settings, index)

    def log_snrs(self, indices: Sequence[int]) -> dict[int, float]:
        return {int(i): self.log_snr(int(i)) for i in indices}

    def describe(self, index: int) -> str:
        """`t=11, log-SNR 4.89` (the index in the family's own words, then the shared axis)."""
        own = f"t={index}" if self.index_name == "t" else f"sigma index {index}"
        return f"{own}, log-SNR {self.log_snr(index):.3g}"

    def to_json(self) -> dict[str, Any]:
        return {"family": self.family, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in self.params}}

    @classmethod
    def from_json(cls, data: Any) -> NoiseAxis | None:
        """grid.json's noise_axis back; None for a missing or unreadable one (the grid is then 'index only')."""
        if not isinstance(data, Mapping) or data.get("family") not in FAMILIES:
            return None
        axis = cls.of(str(data["family"]), **{k: v for k, v in data.items() if k != "family"})
        try:
            axis.log_snr(index_range(axis.family, axis.settings)[0])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None
        return axis


def axis_of(framework: str, diffusion: Mapping[str, Any]) -> NoiseAxis | None:
    """The noise axis of a model config's framework and parsed diffusion block (None for one not known here)."""
    if framework == "ddpm":
        return NoiseAxis.of("ddpm", n_T=int(diffusion["n_T"]), betas=diffusion["betas"])
    if framework == "edm":
        return NoiseAxis.of("edm", sigma_min=float(diffusion["sigma_min"]), sigma_max=float(diffusion["sigma_max"]),
                            rho=float(diffusion["rho"]), steps=int(diffusion.get("index_steps", 18)))
    if framework == "dit":
        return NoiseAxis.of("dit", n_T=int(diffusion.get("n_T", DIT_SCHEDULE["n_T"])),
                            betas=diffusion.get("betas", DIT_SCHEDULE["betas"]))
    return None


def relative_depths(layers: Sequence[str], tap_order: Sequence[str] | None) -> tuple[dict[str, float], str]:
    """({layer: depth in (0, 1]}, basis): position + 1 over the number of taps, so the last tap is 1.

    basis "network": in the network's tap order (every tap it has, so grids of different layer choices agree);
    "grid": in the grid's own layer order, where the network's is not known. A layer outside the tap order (a
    head such as `features`) gets no depth.
    """
    if tap_order:
        order = list(tap_order)
        return {name: (order.index(name) + 1) / len(order) for name in layers if name in order}, "network"
    return {name: (i + 1) / len(layers) for i, name in enumerate(layers)}, "grid"
