"""Building the latent cache (latents/cache.py says what a folder holds), resumable and one job at a time.

The work is a list of chunks (copy 0 of the training split in chunks of up to CHUNK_IMAGES images, copy 1,
..., then the test split); each chunk's randomness (its flips, crops and posterior noise) comes from a
generator seeded by (seed, split, copy, first image), so a resumed build writes what an uninterrupted one
would. A chunk is written into the arrays with plain writes, flushed to disk, and only then counted in
progress.json: a half-written chunk is past the count and is written again. build.lock keeps two jobs from
building one cache; a second job waits for the first and then opens what it built.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...rundir import ProcessLock, atomic_write_text, read_json_dict
from ..data import ImageData
from ..errors import Stopped
from ..reporting import Reporter
from .cache import (
    DEFAULT_COPIES,
    LAYOUT,
    PROGRESS,
    TEST_CODES,
    TEST_LABELS,
    TRAIN_CODES,
    TRAIN_LABELS,
    LatentCache,
    LatentCacheError,
    cache_folder,
    cache_key,
    chunk_plan,
    latents_root,
    open_latent_cache,
    size_text,
)
from .preprocess import RESOLUTION, native_views, resize_views
from .vae import LatentVAE

CHUNK_IMAGES = 1024                 # images per chunk at most: the unit of progress, resume and randomness
_CHUNK_VALUES = 2 ** 24             # ...and fewer for large images: a chunk's float32 views stay near 64 MB
LOCK = "build.lock"
FP16_MAX = 65504.0                  # the largest finite float16
STAGE = "latent cache"              # the reporter's progress stage while building
_WAIT_S = 1.0                       # how often a job waiting for another's build looks again
log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


def build_latent_cache(vae: LatentVAE, train: ImageData, test: ImageData, *, data_root: str | Path | None = None,
                       copies: int = DEFAULT_COPIES, resolution: int = RESOLUTION, seed: int = 0,
                       batch_size: int | None = None, chunk_images: int | None = None,
                       progress: ProgressFn | None = None, reporter: Reporter | None = None,
                       wait: bool = True) -> LatentCache:
    """The cache of (vae, train, test), opened if complete, else built or resumed under its lock.

    data_root: the workspace's data folder (default as load_split's); the cache goes in its latents/.
    batch_size: images per VAE forward (default 64 on CUDA, 16 on the CPU); it does not change the result.
    chunk_images: images per chunk of a new build (default up to CHUNK_IMAGES; a resumed build keeps its own).
    progress: called with (images done, images in all) after each chunk; what it raises stops the build,
        leaving it resumable. reporter: the job's; gets progress(done, total, "latent cache") and is asked
        should_stop() between chunks (a stop raises evaluation.features.Stopped, the build resumable).
    wait: when another job holds the build's lock, wait for it (True) or refuse in one sentence (False).
    """
    _check_request(vae, train, test, copies, resolution)
    key = cache_key(vae, train, test, copies=copies, resolution=resolution, seed=seed)
    folder = cache_folder(latents_root(data_root), key)
    cache = open_latent_cache(folder)
    if cache is not None and cache.layout.get("key") == key:
        log.info(f"latent cache: {cache.summary()}")
        return cache                 # built before: the common case, nothing encoded
    _make_folder(folder)
    lock = ProcessLock(folder / LOCK, role="latent-cache")
    with _writing(folder):
        _take_lock(lock, folder, reporter, wait)
    try:
        cache = open_latent_cache(folder)      # the job we waited for may have finished it
        if cache is not None and cache.layout.get("key") == key:
            return cache
        layout = read_json_dict(folder / LAYOUT)
        damaged = bool((read_json_dict(folder / PROGRESS) or {}).get("complete"))   # complete, yet unreadable
        if layout is None or layout.get("key") != key or damaged:
            chunk = chunk_images or max(1, min(CHUNK_IMAGES, _CHUNK_VALUES // train.images[0].numel()))
            layout = _start(folder, key, vae, train, test, chunk)
        _fill(folder, layout, vae, train, test, batch_size=batch_size, progress=progress, reporter=reporter)
    finally:
        lock.release()
    cache = open_latent_cache(folder)
    if cache is None:
        raise LatentCacheError(f"The latent cache in {folder} was built but cannot be read back; delete the "
                               "folder and build it again.")
    log.info(f"latent cache built: {cache.summary()}")
    return cache


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


def _check_request(vae: LatentVAE, train: ImageData, test: ImageData, copies: int, resolution: int) -> None:
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise LatentCacheError(f"The number of augmented copies must be a whole number, 1 or more (got {copies!r}).")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < vae.downsample \
            or resolution % vae.downsample:
        raise LatentCacheError(f"The latent cache's resolution must be a multiple of {vae.downsample} pixels, the "
                               f"VAE's downsampling (got {resolution!r}); the official code uses {RESOLUTION}.")
    for data in (train, test):
        if len(data) == 0:
            raise LatentCacheError(f"The {data.split} split of {data.spec} holds no images, so it has no latents "
                                   "to cache; check the dataset.")


def _start(folder: Path, key: dict, vae: LatentVAE, train: ImageData, test: ImageData, chunk_images: int) -> dict:
    """Lay out a new build: labels, the arrays' headers, layout.json, then progress at 0."""
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
    chunks = chunk_plan(layout)
    total = sum(stop - start for _, _, start, stop in chunks)
    state = read_json_dict(folder / PROGRESS) or {}
    first, done = int(state.get("chunks_done", 0)), int(state.get("images_done", 0))
    _check_space(folder, layout, total - done)
    log.info(f"latent cache: encoding {total - done} of {total} images into {folder}")
    if reporter is not None:
        reporter.progress(done, total, STAGE)
    batch = batch_size or (64 if vae.device.type == "cuda" else 16)
    offsets = {name: _data_offset(folder / name) for name in (TRAIN_CODES, TEST_CODES)}
    per_image = int(np.prod(layout["test_shape"][1:])) * 2        # fp16 bytes
    n_train, key = layout["train_shape"][1], layout["key"]
    for index in range(first, len(chunks)):
        if reporter is not None and reporter.should_stop():
            raise Stopped()
        split, copy, start, stop = chunks[index]
        data = train if split == "train" else test
        latents = encode_chunk(vae, data.images[start:stop], augment=split == "train", resolution=key["resolution"],
                               generator=chunk_generator(key["seed"], split, copy, start), batch_size=batch)
        if not bool(torch.isfinite(latents).all()) or float(latents.abs().max()) > FP16_MAX:
            raise LatentCacheError(f"The VAE in {vae.folder} gave latents that fp16 cannot hold (not finite, or "
                                   f"above {FP16_MAX:g}) for {split} images {start} to {stop - 1}; check the VAE, "
                                   "or load it in fp32 (precision fp32).")
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
    waiting = False
    while not lock.acquire():
        holder = lock.holder() or "another process"
        if not wait:
            raise LatentCacheError(f"The latent cache in {folder} is being built by {holder}; wait for it to "
                                   "finish, then run this again.")
        if reporter is not None:
            if reporter.should_stop():
                raise Stopped()
            if not waiting:         # once: the stage stays the run's until the build starts
                reporter.progress(0, 0, f"waiting for {holder} to build the latent cache")
        waiting = True
        time.sleep(_WAIT_S)
