"""Decoded-image cache: .npy files under DATA/cache, memory-mapped on load, written atomically.

An entry is three files named by a key that hashes everything the decoded result depends on:
KEY.images.npy (uint8 N,3,H,W), KEY.labels.npy (int64 N) and KEY.json (classes and notes). The JSON is
written last, so an entry without it is incomplete and ignored. The cache is only an optimisation: any
failure to read or write it falls back to decoding, never to an error.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...rundir import atomic_write, atomic_write_bytes

FORMAT_VERSION = 1


def cache_dir(data_root: Path) -> Path | None:
    """DATA/cache, created if needed; None when it cannot be written (e.g. a read-only data folder)."""
    path = data_root / "cache"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


def cache_key(parts: Any) -> str:
    """A short hash of a JSON-able description of what the entry holds."""
    text = json.dumps({"format": FORMAT_VERSION, "parts": parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_entry(folder: Path, key: str) -> tuple[torch.Tensor, torch.Tensor, dict] | None:
    """(images, labels, meta) of a complete entry, images memory-mapped; None if absent or unreadable."""
    meta_path = folder / f"{key}.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        # Copy-on-write mapping: pages load lazily, and a caller writing into the tensor changes only its
        # private copy, never the file (and torch gets the writable array it expects).
        images = np.load(folder / f"{key}.images.npy", mmap_mode="c")
        labels = np.load(folder / f"{key}.labels.npy")
    except (OSError, ValueError):
        return None
    if images.dtype != np.uint8 or images.ndim != 4 or labels.shape != (images.shape[0],) \
            or not images.flags.c_contiguous:
        return None
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64, copy=False)), meta


def save_entry(folder: Path, key: str, images: np.ndarray, labels: np.ndarray, meta: dict) -> None:
    """Write an entry atomically; give up quietly if the disk refuses."""
    try:
        _atomic_npy(folder / f"{key}.images.npy", images)
        _atomic_npy(folder / f"{key}.labels.npy", labels)
        atomic_write_bytes(folder / f"{key}.json", json.dumps(meta).encode(), fsync=False)
    except OSError:
        pass


def _atomic_npy(path: Path, array: np.ndarray) -> None:
    def write(fh) -> None:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write(path, write, binary=True, fsync=False)      # a cache: rebuilt if lost, so no fsync
