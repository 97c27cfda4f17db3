"""Writing image grids and single images as PNG, atomically (a reader never sees half a file)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..rundir import atomic_write


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) or (C, H, W) floats in [0, 1] -> uint8 HWC array(s)."""
    arr = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    return arr.permute(0, 2, 3, 1).numpy() if arr.dim() == 4 else arr.permute(1, 2, 0).numpy()


def grid_array(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """A tiled uint8 HWC grid of (B, C, H, W) images in [0, 1]."""
    tiles = to_uint8(images)
    b, h, w, c = tiles.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(b)))
    rows = math.ceil(b / nrow)
    grid = np.zeros((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), np.uint8)
    for i in range(b):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = tiles[i]
    return grid


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """A uint8 HWC array as a PNG at `path`; not fsynced: a sample grid lost to a power cut is drawn again."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array)
    atomic_write(path, lambda fh: image.save(fh, format="PNG"), binary=True, fsync=False)
    return path


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    return save_png(grid_array(images, nrow), path)
