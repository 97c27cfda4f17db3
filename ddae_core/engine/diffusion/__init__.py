"""Diffusion frameworks: DDPM (VP) and EDM (VE), as the official DDAE code defines them."""

from .base import Framework
from .ddpm import DDPM
from .edm import EDM, karras_sigmas

__all__ = ["DDPM", "EDM", "Framework", "karras_sigmas"]
