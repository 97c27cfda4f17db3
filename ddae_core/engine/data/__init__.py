"""Datasets held whole in memory as uint8 tensors, and their batching and augmentation.

A dataset is named by a data spec (see `describe_specs`). Training on a two-core CPU cannot afford PIL
or DataLoader workers per step, so every split is decoded once (and cached on disk where decoding is
slow), then batched with index tensors and augmented with vectorised tensor ops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import (
    ImageData,
    balanced_subset,
    check_positive,
    check_split,
    data_fingerprint,
    join_notes,
    resize_images,
    resolve_data_root,
    size_text,
)
from .batches import BatchSampler, augment_batch
from .builtin import SHAPES, generate_shapes
from .decode import load_files
from .folder import list_folder, list_tiny_imagenet, tiny_imagenet_root
from .specs import DataSpec, parse_spec, stored_spec

__all__ = ["BatchSampler", "ImageData", "augment_batch", "check_data_files", "check_data_spec", "data_fingerprint",
           "describe_specs", "load_split", "stored_spec"]


def describe_specs() -> list[tuple[str, str]]:
    """(example spec, one-line description) for each kind of dataset, for `--help` and the dataset chooser."""
    return [
        ("builtin:shapes", "Ten generated shapes on textured backgrounds, 32x32, 10,000 train / 2,000 test; "
                           "works offline."),
        ("builtin:shapes?n_train=2000&n_test=500&seed=3", "The same with other split sizes or another "
                                                          "generator seed."),
        ("builtin:shapes?texture=0", "The same shapes on plain backgrounds."),
        ("cifar10", "CIFAR-10 (32x32, 10 classes) via torchvision in DATA/cifar10, downloaded if online."),
        ("cifar100", "CIFAR-100 (32x32, 100 classes) via torchvision in DATA/cifar100, downloaded if online."),
        ("folder:/path/to/images", "Images in PATH/train/<class>/ and PATH/test/<class>/, or in PATH/<class>/ "
                                   "with 10% of each class held out as test."),
        ("tiny-imagenet:/path/to/tiny-imagenet-200", "Tiny-ImageNet-200 as unzipped (64x64, 200 classes); "
                                                     "the test split is val/."),
    ]


def check_data_spec(spec: str, data_root: str | Path | None = None) -> None:
    """Raise DataError if `spec` is malformed, or names a folder that does not exist; reads no images."""
    parsed = parse_spec(spec, resolve_data_root(data_root) if data_root is not None else None)
    if parsed.kind == "folder" and not parsed.path.is_dir():
        raise DataError(f"Folder {parsed.path} does not exist; check the path in folder:{parsed.path}.")
    if parsed.kind == "tiny-imagenet":
        tiny_imagenet_root(parsed.path)


def check_data_files(spec: str, split: str, data_root: str | Path | None = None) -> None:
    """check_data_spec, and for folder:PATH that `split` has image files in class folders (listed, not
    decoded), so that an empty folder is refused before a run exists rather than failing it."""
    check_data_spec(spec, data_root)
    parsed = parse_spec(spec, resolve_data_root(data_root) if data_root is not None else None)
    if parsed.kind == "folder":
        list_folder(parsed.path, split, 0)


def load_split(spec: str, split: str, *, resolution: int | None = None, data_root: str | Path | None = None,
               seed: int = 0, limit: int | None = None) -> ImageData:
    """Load one split of a dataset as uint8 (N, 3, H, W).

    resolution: resize (antialiased bilinear) to resolution x resolution when the stored size differs,
        and say so in `note`.
    data_root: the workspace's data folder, for caches and torchvision datasets
        (default $DDAE_WORKSPACE/data, else ~/ddae-workspace/data).
    seed: for the held-out split of a folder without train/test folders, and for `limit`; the builtin
        dataset's own seed is part of its spec, so that a spec always names the same images.
    limit: keep only the first `limit` images of a seeded class-balanced shuffle (kept in dataset order).
    """
    root = resolve_data_root(data_root)
    parsed = parse_spec(spec, root)
    check_split(split)
    check_positive("resolution", resolution, "pixels")
    check_positive("limit", limit, "images")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"Data seed must be a whole number, 0 or more (got {seed!r}).")

    if parsed.kind in ("folder", "tiny-imagenet"):
        images, labels, classes, notes = _load_files(parsed, split, resolution, root, seed, limit)
    else:
        images, labels, classes, notes = _load_arrays(parsed, split, root)
        if limit is not None and limit < len(labels):
            keep = torch.from_numpy(balanced_subset(labels.numpy(), limit, seed))
            images, labels = images[keep], labels[keep]
        stored = tuple(images.shape[2:])
        if resolution is not None and stored != (resolution, resolution):
            images = resize_images(images, (resolution, resolution))
            notes.append(f"resized from {size_text(stored)} to {size_text((resolution, resolution))}")
    return ImageData(images=images, labels=labels, classes=classes, spec=spec.strip(), split=split,
                     note=join_notes(notes))


def _load_arrays(parsed: DataSpec, split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    if parsed.kind == "shapes":
        n = parsed.params["n_train" if split == "train" else "n_test"]
        images, labels = generate_shapes(n, parsed.params["seed"], split, texture=bool(parsed.params["texture"]))
        return images, labels, list(SHAPES), []
    from .torchvision_sets import load_cifar  # imports torchvision only when asked for it
    images, labels, classes = load_cifar(parsed.kind, split, root)
    return images, labels, classes, []


def _load_files(parsed: DataSpec, split: str, resolution: int | None, root: Path, seed: int,
                limit: int | None) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    listing = list_folder(parsed.path, split, seed) if parsed.kind == "folder" \
        else list_tiny_imagenet(parsed.path, split)
    if limit is not None and limit < len(listing.files):
        # Before decoding, so a quick test with limit=100 decodes 100 files, not the whole folder.
        listing = listing.subset(balanced_subset(listing.labels, limit, seed))
    images, labels, notes = load_files(listing, split, resolution, root)
    return images, labels, listing.classes, listing.notes + notes
