"""Diffusion frameworks: DDPM (VP) and EDM (VE), as the official DDAE code defines them, and DiT's latent DDPM."""

from .base import Framework
from .ddpm import DDPM
from .dit import DiTDiffusion, dit_alphabar, dit_log_snr
from .edm import EDM, karras_sigmas

__all__ = ["DDPM", "EDM", "DiTDiffusion", "Framework", "dit_alphabar", "dit_log_snr", "karras_sigmas"]
