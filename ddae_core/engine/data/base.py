"""The in-memory dataset record and the steps every loader shares: data root, limit, resize, notes."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError

SPLITS = ("train", "test")
_RESIZE_CHUNK = 256  # images per interpolate call: bounds the float32 temporaries to a few MB


@dataclass
class ImageData:
    """One split of a dataset, held whole in memory as uint8 (or memory-mapped from a cache file)."""

    images: torch.Tensor   # uint8 (N, 3, H, W), CPU, contiguous
    labels: torch.Tensor   # int64 (N,)
    classes: list[str]     # class names, index = label
    spec: str              # the data spec it came from, e.g. "builtin:shapes"
    split: str             # "train" | "test"
    note: str | None = None  # what was done to the data that a user should know, e.g. a resize

    def __len__(self) -> int:
        return int(self.images.shape[0])


def default_data_root() -> Path:
    """$DDAE_WORKSPACE/data, else ~/ddae-workspace/data."""
    workspace = os.environ.get("DDAE_WORKSPACE")
    base = Path(workspace).expanduser() if workspace else Path.home() / "ddae-workspace"
    return base / "data"


def resolve_data_root(data_root: str | Path | None) -> Path:
    return Path(data_root).expanduser().absolute() if data_root is not None else default_data_root().absolute()


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"Split {split!r} is not known; use 'train' or 'test'.")


def check_positive(name: str, value: int | None, what: str) -> None:
    """`value` must be None or a positive int; `what` says what it counts, for the message."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"{name} must be a positive number of {what} (got {value!r}).")


def balanced_subset(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of the first `limit` items of a seeded shuffle that deals out the classes in turns.

    Each class is shuffled on its own, then items are taken round by round (one per class per round, in a
    random class order), so any prefix is as class-balanced as the data allows.
    """
    labels = np.asarray(labels)
    if limit >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng([seed, 0x11A17])  # a stream of its own, apart from the split's
    rank = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        rank[where] = rng.permutation(len(where))
    order = np.lexsort((rng.random(len(labels)), rank))
    # Sorted, so a memory-mapped source is read front to back.
    return np.sort(order[:limit])


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, *size) by antialiased bilinear interpolation, in chunks."""
    out = torch.empty((images.shape[0], images.shape[1], *size), dtype=torch.uint8)
    for start in range(0, images.shape[0], _RESIZE_CHUNK):
        chunk = images[start:start + _RESIZE_CHUNK].float()
        scaled = F.interpolate(chunk, size=size, mode="bilinear", antialias=True, align_corners=False)
        out[start:start + _RESIZE_CHUNK] = scaled.round_().clamp_(0, 255).to(torch.uint8)
    return out


def size_text(size: tuple[int, int]) -> str:
    """(H, W) -> 'WxH', the way image sizes are usually written."""
    return f"{size[1]}x{size[0]}"


def join_notes(notes: list[str]) -> str | None:
    return "; ".join(notes) if notes else None


def data_fingerprint(data: ImageData) -> str:
    """SHA-256 (first 16 hex digits) of a split's images and labels: a folder whose files changed is new data."""
    digest = hashlib.sha256()
    for tensor in (data.images, data.labels):
        digest.update(tensor.contiguous().numpy().data)
    return digest.hexdigest()[:16]
