"""Decoding a FileList into one uint8 tensor, with unreadable files skipped and the result cached.

Decoding is serial: for CIFAR-sized JPEGs PIL spends ~0.1 ms per file, mostly holding the GIL, and a
thread pool measured slower on two cores. The cache makes the cost a one-off per folder.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from ..image_files import to_8bit
from .base import resize_images, size_text
from .cache import cache_dir, cache_key, load_entry, save_entry
from .folder import FileList


def load_files(listing: FileList, split: str, resolution: int | None,
               data_root: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(uint8 images (N, 3, H, W), int64 labels, notes) for the listed files, from the cache when it is fresh."""
    folder = cache_dir(data_root)
    key = cache_key(_describe(listing, split, resolution)) if folder is not None else None
    if folder is not None and key is not None:
        hit = load_entry(folder, key)
        if hit is not None:
            images, labels, meta = hit
            return images, labels, list(meta.get("notes", []))
    images, labels, notes = _decode_all(listing, resolution)
    if folder is not None and key is not None:
        save_entry(folder, key, images, labels, {"notes": notes, "classes": listing.classes})
    return torch.from_numpy(images), torch.from_numpy(labels), notes


def _describe(listing: FileList, split: str, resolution: int | None) -> dict:
    """Everything the decoded arrays depend on; any edit, addition or removal of a file changes it.

    The seed is not part of it: it acts only through which files are in the split, which this lists.
    """
    files = []
    for path, label in zip(listing.files, listing.labels.tolist()):
        try:
            stat = path.stat()
            size, mtime = stat.st_size, stat.st_mtime_ns
        except OSError:
            size, mtime = -1, -1
        files.append([path.relative_to(listing.root).as_posix(), label, size, mtime])
    return {"root": str(listing.root), "split": split, "resolution": resolution,
            "classes": listing.classes, "files": files}


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparent pixels become black instead of whatever colour they hide."""
    image = to_8bit(image)          # 16-bit grayscale: scaled, not clipped to white
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def _read(path: Path, target: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]] | None:
    """(H, W, 3) uint8 pixels and the stored (H, W) of one file, or None if it cannot be decoded."""
    try:
        with Image.open(path) as image:
            stored = (image.height, image.width)
            # JPEGs can decode straight to a smaller power-of-two scale (never below target): much faster
            # for big photos, and the antialiased resize below does the rest.
            image.draft("RGB", (target[1], target[0]))
            return np.array(_to_rgb(image)), stored  # a writable copy, as torch.from_numpy wants
    except Exception:  # noqa: BLE001 - PIL's plugins raise many kinds; any of them means "unreadable"
        return None


def _most_common_size(files: list[Path]) -> tuple[int, int] | None:
    sizes: Counter[tuple[int, int]] = Counter()
    for path in files:
        try:
            with Image.open(path) as image:  # reads the header only
                sizes[(image.height, image.width)] += 1
        except Exception:  # noqa: BLE001 - reported as unreadable by the decoding pass
            continue
    return sizes.most_common(1)[0][0] if sizes else None


def _decode_all(listing: FileList, resolution: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    files = listing.files
    target = (resolution, resolution) if resolution else _most_common_size(files)
    if target is None:
        raise DataError(f"None of the {len(files)} image files under {listing.root} could be read "
                        f"(e.g. {files[0]}); check that they are images.")
    images = np.empty((len(files), 3, *target), dtype=np.uint8)
    keep = np.zeros(len(files), dtype=bool)
    unreadable: list[Path] = []
    stored_sizes: Counter[tuple[int, int]] = Counter()
    resized = 0
    for i, path in enumerate(files):
        result = _read(path, target)
        if result is None:
            unreadable.append(path)
            continue
        pixels, stored = result
        stored_sizes[stored] += 1
        chw = torch.from_numpy(pixels).permute(2, 0, 1)
        if pixels.shape[:2] != target:
            chw = resize_images(chw[None], target)[0]
        if stored != target:
            resized += 1
        images[i] = chw.numpy()
        keep[i] = True
    if not keep.any():
        raise DataError(f"None of the {len(files)} image files under {listing.root} could be read "
                        f"(e.g. {unreadable[0]}); check that they are images.")

    notes = []
    if resized:
        if len(stored_sizes) == 1:
            notes.append(f"resized from {size_text(next(iter(stored_sizes)))} to {size_text(target)}")
        else:
            notes.append(f"resized {resized} of {int(keep.sum())} images of mixed sizes to {size_text(target)}")
    if unreadable:
        plural = "s" if len(unreadable) > 1 else ""
        notes.append(f"skipped {len(unreadable)} unreadable file{plural}, e.g. {unreadable[0]}")
    if not keep.all():
        return np.ascontiguousarray(images[keep]), listing.labels[keep], notes
    return images, listing.labels.copy(), notes
