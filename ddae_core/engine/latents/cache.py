"""The latent cache: a dataset's images through the official preprocessing and the VAE, once, on disk.

One folder per (VAE identity, data spec and content, copies K, resolution, seed) under DATA/latents/ (beside
the decoded-image cache DATA/cache/ and the baselines DATA/baselines/), holding fp16 .npy arrays read as
memory maps: train_codes (K, N, C, h, w), K augmented copies of the training split (the official code keeps
10), test_codes (N_test, C, h, w), the un-augmented test split, and both splits' labels. Every probe of every
run with that VAE and data reads the same folder; the official code instead holds all copies in RAM.
layout.json says what a folder holds and progress.json how far its build got (latents/build.py builds it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...rundir import read_json_dict
from ..data import ImageData, data_fingerprint
from ..data.base import resolve_data_root
from ..errors import UserError
from .vae import LatentVAE

LATENTS_DIR = "latents"             # under the workspace's data folder: DATA/latents/<key>/
DEFAULT_COPIES = 10                 # vae_preprocessing.py's --num_copies
FORMAT_VERSION = 1                  # bump when the preprocessing or the layout changes what a folder holds
TRAIN_CODES, TEST_CODES = "train_codes.npy", "test_codes.npy"
TRAIN_LABELS, TEST_LABELS = "train_labels.npy", "test_labels.npy"
LAYOUT, PROGRESS = "layout.json", "progress.json"


class LatentCacheError(UserError):
    """A latent cache cannot be written (full disk, read-only folder) or is being built by another job."""


@dataclass
class LatentCache:
    """A complete cache, its arrays memory-mapped read-only (fp16; the reader returns float32)."""

    folder: Path
    layout: dict
    train_codes: np.ndarray         # float16 (K, N, C, h, w)
    train_labels: torch.Tensor      # int64 (N,)
    test_codes: np.ndarray          # float16 (N_test, C, h, w)
    test_labels: torch.Tensor       # int64 (N_test,)

    @property
    def copies(self) -> int:
        return int(self.train_codes.shape[0])

    @property
    def classes(self) -> list[str]:
        return list(self.layout["classes"])

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        c, h, w = self.test_codes.shape[1:]
        return int(c), int(h), int(w)

    @property
    def size_bytes(self) -> int:
        return folder_size(self.folder)

    def summary(self) -> str:
        """`4x32x32 fp16 latents of 10 copies x 50000 train + 10000 test images, 1.3 GB in DIR`"""
        c, h, w = self.latent_shape
        copies = "1 copy" if self.copies == 1 else f"{self.copies} copies"
        return (f"{c}x{h}x{w} fp16 latents of {copies} x {len(self.train_labels)} train + "
                f"{len(self.test_labels)} test images, {size_text(self.size_bytes)} in {self.folder}")


@dataclass(frozen=True)
class CacheInfo:
    """What `ddae cache list` and the app show of one cache folder."""

    folder: Path
    layout: dict
    done: int                       # images encoded so far (train copies and test together)
    total: int
    size_bytes: int                 # allocated on disk now (a build's arrays fill in as it goes)

    @property
    def complete(self) -> bool:
        return self.done >= self.total


def latents_root(data_root: str | Path | None = None) -> Path:
    """DATA/latents: the workspace's data folder (as load_split resolves it) + latents/."""
    return resolve_data_root(data_root) / LATENTS_DIR


def cache_key(vae: LatentVAE, train: ImageData, test: ImageData, *, copies: int, resolution: int, seed: int) -> dict:
    """Everything a cache's contents depend on; the folder is named by its hash."""
    return {"format": FORMAT_VERSION, "vae": vae.identity, "data": train.spec,
            "train_data": data_fingerprint(train), "test_data": data_fingerprint(test),
            "copies": int(copies), "resolution": int(resolution), "seed": int(seed)}


def cache_folder(root: Path, key: dict) -> Path:
    return root / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def open_latent_cache(folder: str | Path) -> LatentCache | None:
    """The complete cache in `folder`, memory-mapped; None when absent, unfinished or damaged."""
    folder = Path(folder)
    layout, state = read_json_dict(folder / LAYOUT), read_json_dict(folder / PROGRESS)
    if layout is None or state is None or not state.get("complete"):
        return None
    try:
        train_codes = np.load(folder / TRAIN_CODES, mmap_mode="r")
        test_codes = np.load(folder / TEST_CODES, mmap_mode="r")
        train_labels = torch.from_numpy(np.load(folder / TRAIN_LABELS).astype(np.int64, copy=False))
        test_labels = torch.from_numpy(np.load(folder / TEST_LABELS).astype(np.int64, copy=False))
    except (OSError, ValueError):
        return None
    if list(train_codes.shape) != layout["train_shape"] or list(test_codes.shape) != layout["test_shape"] \
            or train_codes.dtype != np.float16 or test_codes.dtype != np.float16 \
            or len(train_labels) != train_codes.shape[1] or len(test_labels) != len(test_codes):
        return None
    return LatentCache(folder, layout, train_codes, train_labels, test_codes, test_labels)


def list_latent_caches(data_root: str | Path | None = None) -> list[CacheInfo]:
    """Every cache folder under DATA/latents with a layout, complete or not, oldest first."""
    root = latents_root(data_root)
    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        layout = read_json_dict(folder / LAYOUT)
        if layout is None:
            continue
        state = read_json_dict(folder / PROGRESS) or {}
        total = sum(stop - start for _, _, start, stop in chunk_plan(layout))
        done = total if state.get("complete") else int(state.get("images_done", 0))
        found.append(CacheInfo(folder, layout, done, total, folder_size(folder)))
    return sorted(found, key=lambda info: info.layout.get("created", 0))


def chunk_plan(layout: dict) -> list[tuple[str, int, int, int]]:
    """(split, copy, start, stop) of every chunk, in build order."""
    size, (copies, n_train), n_test = layout["chunk_images"], layout["train_shape"][:2], layout["test_shape"][0]
    work = [("train", c, s, min(s + size, n_train)) for c in range(copies) for s in range(0, n_train, size)]
    return work + [("test", 0, s, min(s + size, n_test)) for s in range(0, n_test, size)]


def folder_size(folder: Path) -> int:
    """Bytes allocated on disk by the files of `folder` (an unfinished build's arrays hold what it wrote)."""
    total = 0
    for path in folder.iterdir() if folder.is_dir() else ():
        try:
            total += path.stat().st_blocks * 512
        except (OSError, AttributeError):
            continue
    return total


def size_text(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    raise AssertionError("unreachable")


