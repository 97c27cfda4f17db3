"""Networks: the official DDAE UNet (DDPM 35.7M and DDPM++ 56.5M shapes and smaller)."""

from .unet import UNet

__all__ = ["UNet"]
