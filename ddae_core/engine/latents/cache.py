"""The latent cache: a dataset's images through the official preprocessing and the VAE, once, on disk.

One folder per (VAE identity, data spec and content, copies K, resolution, seed) under DATA/latents/ (beside
the decoded-image cache DATA/cache/ and the baselines DATA/baselines/), holding fp16 .npy arrays read as
memory maps: train_codes (K, N, C, h, w), K augmented copies of the training split (the official code keeps
10), test_codes (N_test, C, h, w), the un-augmented test split, and both splits' labels. Every probe of every
run with that VAE and data reads the same folder; the official code instead holds all copies in RAM.

A build is resumable. The work is a list of chunks (copy 0 of the training split in chunks of `chunk_images`,
copy 1, ..., then the test split); each chunk's randomness (its crops, flips and posterior noise) comes from a
generator seeded by (seed, split, copy, first image), so a resumed build writes what an uninterrupted one
would. A chunk is written into the arrays, flushed to disk, and only then counted in progress.json: a
half-written chunk is past the count and is written again. build.lock keeps two jobs from building one cache.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...rundir import ProcessLock, atomic_write_text
from ..data import ImageData, data_fingerprint
from ..data.base import resolve_data_root
from ..errors import Stopped, UserError
from ..reporting import Reporter
from .preprocess import RESOLUTION, native_views, resize_views
from .vae import LatentVAE

LATENTS_DIR = "latents"             # under the workspace's data folder: DATA/latents/<key>/
DEFAULT_COPIES = 10                 # vae_preprocessing.py's --num_copies
FORMAT_VERSION = 1                  # bump when the preprocessing or the layout changes what a folder holds
CHUNK_IMAGES = 1024                 # images per chunk: the unit of progress, resume and randomness
TRAIN_CODES, TEST_CODES = "train_codes.npy", "test_codes.npy"
TRAIN_LABELS, TEST_LABELS = "train_labels.npy", "test_labels.npy"
LAYOUT, PROGRESS, LOCK = "layout.json", "progress.json", "build.lock"
STAGE = "latent cache"              # the reporter's progress stage while building
_WAIT_S = 1.0                       # how often a job waiting for another's build looks again

ProgressFn = Callable[[int, int], None]


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


def folder_size(folder: Path) -> int:
    """Bytes allocated on disk by the files of `folder` (sparse arrays count only what is written)."""
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


def build_latent_cache(vae: LatentVAE, train: ImageData, test: ImageData, *, data_root: str | Path | None = None,
                       copies: int = DEFAULT_COPIES, resolution: int = RESOLUTION, seed: int = 0,
                       batch_size: int | None = None, chunk_images: int = CHUNK_IMAGES,
                       progress: ProgressFn | None = None, reporter: Reporter | None = None,
                       wait: bool = True) -> LatentCache:
    """The cache of (vae, train, test), opened if complete, else built or resumed under its lock.

    data_root: the workspace's data folder (default as load_split's); the cache goes in its latents/.
    batch_size: images per VAE forward (default 64 on CUDA, 16 on the CPU); it does not change the result.
    chunk_images: images per chunk of a new build (a resumed build keeps its own).
    progress: called with (images done, images in all) after each chunk; what it raises stops the build,
        leaving it resumable. reporter: the job's; gets progress(done, total, "latent cache") and is asked
        should_stop() between chunks (a stop raises evaluation.features.Stopped, the build resumable).
    wait: when another job holds the build's lock, wait for it (True) or refuse in one sentence (False).
    """
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise LatentCacheError(f"The number of augmented copies must be a whole number, 1 or more (got {copies!r}).")
    key = cache_key(vae, train, test, copies=copies, resolution=resolution, seed=seed)
    folder = cache_folder(latents_root(data_root), key)
    cache = open_latent_cache(folder)
    if cache is not None and cache.layout.get("key") == key:
        return cache                 # built before: the common case, nothing encoded
    _make_folder(folder)
    lock = ProcessLock(folder / LOCK, role="latent-cache")
    with _writing(folder):
        _take_lock(lock, folder, reporter, wait)
    try:
        cache = open_latent_cache(folder)      # the job we waited for may have finished it
        if cache is not None and cache.layout.get("key") == key:
            return cache
        layout = _read_json(folder / LAYOUT)
        if layout is None or layout.get("key") != key:
            layout = _start(folder, key, vae, train, test, chunk_images)
        _fill(folder, layout, vae, train, test, batch_size=batch_size, progress=progress, reporter=reporter)
    finally:
        lock.release()
    cache = open_latent_cache(folder)
    if cache is None:
        raise LatentCacheError(f"The latent cache in {folder} was built but cannot be read back; delete the "
                               "folder and build it again.")
    return cache


def open_latent_cache(folder: str | Path) -> LatentCache | None:
    """The complete cache in `folder`, memory-mapped; None when absent, unfinished or damaged."""
    folder = Path(folder)
    layout, state = _read_json(folder / LAYOUT), _read_json(folder / PROGRESS)
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
        layout = _read_json(folder / LAYOUT)
        if layout is None:
            continue
        state = _read_json(folder / PROGRESS) or {}
        total = sum(stop - start for _, _, start, stop in _chunks(layout))
        done = total if state.get("complete") else int(state.get("images_done", 0))
        found.append(CacheInfo(folder, layout, done, total, folder_size(folder)))
    return sorted(found, key=lambda info: info.layout.get("created", 0))


def chunk_generator(seed: int, split: str, copy: int, start: int) -> torch.Generator:
    """The CPU generator of one chunk's flips, crops and posterior noise."""
    words = np.random.SeedSequence([int(seed), 0 if split == "train" else 1, int(copy), int(start)])
    return torch.Generator().manual_seed(int(words.generate_state(1, np.uint64)[0] >> 1))


def encode_chunk(vae: LatentVAE, images: torch.Tensor, *, augment: bool, generator: torch.Generator,
                 resolution: int = RESOLUTION, batch_size: int = 16) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 latents (B, C, h, w) on the CPU, as the cache stores a chunk.

    All randomness is drawn for the whole chunk first (flips and crops, then the posterior noise), so the
    result does not depend on batch_size.
    """
    views = native_views(images, augment=augment, generator=generator)
    noise = torch.randn((len(images), *vae.latent_shape(resolution)), generator=generator)
    out = []
    for start in range(0, len(images), batch_size):
        batch = resize_views(views[start:start + batch_size].to(vae.device), resolution)
        out.append(vae.encode(batch, noise=noise[start:start + batch_size]).cpu())
    return torch.cat(out)


# Building.
def _chunks(layout: dict) -> list[tuple[str, int, int, int]]:
    """(split, copy, start, stop) of every chunk, in build order."""
    size, (copies, n_train), n_test = layout["chunk_images"], layout["train_shape"][:2], layout["test_shape"][0]
    work = [("train", c, s, min(s + size, n_train)) for c in range(copies) for s in range(0, n_train, size)]
    return work + [("test", 0, s, min(s + size, n_test)) for s in range(0, n_test, size)]


def _start(folder: Path, key: dict, vae: LatentVAE, train: ImageData, test: ImageData, chunk_images: int) -> dict:
    """Lay out a new build: labels, empty (sparse) arrays, layout.json, then progress at 0."""
    shape = list(vae.latent_shape(key["resolution"]))
    layout: dict[str, Any] = {"key": key, "chunk_images": int(chunk_images), "classes": list(train.classes),
                              "train_shape": [key["copies"], len(train), *shape], "test_shape": [len(test), *shape],
                              "vae_folder": str(vae.folder), "created": time.time()}
    with _writing(folder):
        (folder / PROGRESS).unlink(missing_ok=True)
        np.save(folder / TRAIN_LABELS, train.labels.numpy().astype(np.int64))
        np.save(folder / TEST_LABELS, test.labels.numpy().astype(np.int64))
        for name, array_shape in ((TRAIN_CODES, layout["train_shape"]), (TEST_CODES, layout["test_shape"])):
            _start_array(folder / name, array_shape)
        atomic_write_text(folder / LAYOUT, json.dumps(layout, indent=1))
        _save_progress(folder, 0, 0, complete=False)
    return layout


def _start_array(path: Path, shape: list[int]) -> None:
    """An .npy file of float16 `shape` that holds only its header: each chunk's write extends it in build
    order, so the disk fills (or refuses) as the build goes, and a file's size says how far it got."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False,
              "shape": tuple(shape)}
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)


def _data_offset(path: Path) -> int:
    """Where the data of an .npy file starts (after its header)."""
    with open(path, "rb") as fh:
        np.lib.format.read_magic(fh)
        np.lib.format.read_array_header_1_0(fh)       # the version _start_array writes
        return fh.tell()


def _fill(folder: Path, layout: dict, vae: LatentVAE, train: ImageData, test: ImageData, *,
          batch_size: int | None, progress: ProgressFn | None, reporter: Reporter | None) -> None:
    """Encode and write every chunk past the counted ones, counting each once it is on disk."""
    chunks = _chunks(layout)
    total = sum(stop - start for _, _, start, stop in chunks)
    state = _read_json(folder / PROGRESS) or {}
    first, done = int(state.get("chunks_done", 0)), int(state.get("images_done", 0))
    _check_space(folder, layout, total - done)
    batch = batch_size or (64 if vae.device.type == "cuda" else 16)
    offsets = {name: _data_offset(folder / name) for name in (TRAIN_CODES, TEST_CODES)}
    per_image = int(np.prod(layout["test_shape"][1:])) * 2        # fp16 bytes
    n_train = layout["train_shape"][1]
    for index in range(first, len(chunks)):
        if reporter is not None and reporter.should_stop():
            raise Stopped()
        split, copy, start, stop = chunks[index]
        data = train if split == "train" else test
        latents = encode_chunk(vae, data.images[start:stop], augment=split == "train", resolution=layout["key"]
                               ["resolution"], generator=chunk_generator(layout["key"]["seed"], split, copy, start),
                               batch_size=batch)
        name = TRAIN_CODES if split == "train" else TEST_CODES
        position = (copy * n_train + start if split == "train" else start) * per_image
        with _writing(folder):
            _write_at(folder / name, offsets[name] + position, latents.numpy().astype(np.float16).tobytes())
            done += stop - start
            _save_progress(folder, index + 1, done, complete=index + 1 == len(chunks))
        if reporter is not None:
            reporter.progress(done, total, STAGE)
        if progress is not None:
            progress(done, total)
    if not chunks:
        _save_progress(folder, 0, 0, complete=True)


def _write_at(path: Path, offset: int, data: bytes) -> None:
    """Write `data` at `offset` with plain writes (a full disk is an OSError here, not a crash in a memory
    map), and flush it to disk before the chunk is counted."""
    fd = os.open(path, os.O_WRONLY)
    try:
        written = 0
        while written < len(data):
            written += os.pwrite(fd, memoryview(data)[written:], offset + written)
        os.fsync(fd)
    finally:
        os.close(fd)


def _save_progress(folder: Path, chunks_done: int, images_done: int, *, complete: bool) -> None:
    atomic_write_text(folder / PROGRESS, json.dumps({"chunks_done": chunks_done, "images_done": images_done,
                                                     "complete": complete}))


def _check_space(folder: Path, layout: dict, images_left: int) -> None:
    needed = images_left * int(np.prod(layout["test_shape"][1:])) * 2
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise LatentCacheError(f"The latent cache in {folder} needs {size_text(needed)} more but its disk has "
                               f"{size_text(free)} free; free some space and build it again (it continues "
                               "where it stopped).")


def _make_folder(folder: Path) -> None:
    with _writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder))


@contextmanager
def _writing(folder: Path) -> Iterator[None]:
    """Turns a write that the disk refuses into one sentence; what was written and counted stays resumable."""
    try:
        yield
    except OSError as exc:
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or type(exc).__name__).lower()
        raise LatentCacheError(f"The latent cache in {folder} cannot be written ({reason}); free some space or "
                               "make the workspace's data folder writable, then build it again (it continues "
                               "where it stopped).") from None


def _take_lock(lock: ProcessLock, folder: Path, reporter: Reporter | None, wait: bool) -> None:
    while not lock.acquire():
        holder = lock.holder() or "another process"
        if not wait:
            raise LatentCacheError(f"The latent cache in {folder} is being built by {holder}; wait for it to "
                                   "finish, then run this again.")
        if reporter is not None:
            if reporter.should_stop():
                raise Stopped()
            reporter.progress(0, 0, f"waiting for {holder} to build the latent cache")
        time.sleep(_WAIT_S)


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None

