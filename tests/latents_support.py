"""A random-init tiny AutoencoderKL saved as a VAE folder, for the latent path's tests (no download).

Four blocks, as the SD VAE has, so images downsample by 8 (64x64 -> 4x8x8 latents), but 8-16 channels wide.
"""

from __future__ import annotations

from pathlib import Path


def save_tiny_vae(folder: Path, seed: int = 0) -> Path:
    """A random-init AutoencoderKL (seeded) saved with save_pretrained into `folder`; returns `folder`."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    model = AutoencoderKL(block_out_channels=(8, 16, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
                          up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=1, latent_channels=4,
                          norm_num_groups=8, sample_size=64)
    model.save_pretrained(folder)
    return folder
