"""The baseline cache: a grid's raw-pixel and random-init results, kept under <workspace>/data/baselines/.

The baselines do not depend on the trained weights, so a later grid may read them instead of training a second
grid, but only a grid for which they were measured exactly: the key holds everything they depend on (network,
diffusion, data and its content, split sizes, protocol and its options, the extraction's resolved precision,
batch size and device, and PROBE_CODE_VERSION). An entry keeps its key and when it was measured, and every
reader says which it was: measured in this run, or read from the cache and from when.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from ..data import data_fingerprint as data_fingerprint  # re-exported: the latent cache keys on it too
from ..device import extraction_amp_dtype
from .sources import RANDOM_INIT_SEED

# Bump when a change to the probe's heads, their training, the extraction or the baselines moves their numbers:
# every cached entry then stops matching and is measured again.
PROBE_CODE_VERSION = 2
BASELINE_CACHE_VERSION = 2      # the key's layout (1: no precision, batch, device, data content or code version)
CACHE_DIR = Path("data") / "baselines"


def extraction_precision(grid) -> str:
    """The dtype the grid's features are really extracted in ('fp32', 'bfloat16', ...), 'auto' resolved."""
    if grid.precision is None:          # the official protocol: the model as the job loaded it
        dtype = grid.model.amp_dtype
    else:
        dtype = extraction_amp_dtype(grid.ctx.device, grid.precision)
    return "fp32" if dtype is None else str(dtype).removeprefix("torch.")


def cache_key(grid) -> dict:
    """Everything a grid's baselines depend on (not the trained weights)."""
    ctx, o = grid.ctx, grid.options
    return {
        "version": BASELINE_CACHE_VERSION, "probe_code": PROBE_CODE_VERSION,
        "framework": ctx.model.config.framework, "network": ctx.model.config.network,
        "diffusion": ctx.model.config.diffusion,
        "data": grid.train.spec, "train": len(grid.train), "test": len(grid.test),
        "train_data": data_fingerprint(grid.train), "test_data": data_fingerprint(grid.test),
        "timesteps": grid.timesteps, "layers": grid.layers, "protocol": o.protocol,
        "epochs": grid.epochs, "batch_size": grid.batch_size, "lr": grid.lr, "views": o.views,
        "seed": ctx.seed, "random_init_seed": RANDOM_INIT_SEED,
        "precision": extraction_precision(grid), "extract_batch_size": grid.extract_batch,
        "device": grid.ctx.device.type,
        # The best cell's held-out images are drawn from the training split (their count, 0 without).
        "held_out": len(grid.held) if getattr(grid, "held", None) is not None else 0,
    }


def cache_path(workspace: Path, key: dict) -> Path:
    """<workspace>/data/baselines/<first 24 hex digits of the key's SHA-256>.json"""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    return workspace / CACHE_DIR / f"{digest}.json"


def read_cached(path: Path, key: dict) -> dict | None:
    """The entry at `path` if it was measured under exactly `key`; None when absent, damaged or another key's."""
    try:
        entry = json.loads(path.read_text())
        float(entry["pixels"]["accuracy"]), float(entry["random_init"]["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        return None         # none yet, or damaged: measure again
    if json.loads(json.dumps(entry.get("key"), default=str)) != json.loads(json.dumps(key, default=str)):
        return None         # an older layout, or a collision: not measured for this grid
    return entry


def new_entry(pixels: dict, random_init: dict, key: dict) -> dict:
    """A cache entry: the results, the key they were measured under and when (Unix seconds)."""
    return {"pixels": pixels, "random_init": random_init, "measured": time.time(), "key": key}


def provenance(baselines: dict) -> str:
    """`baselines measured in this run`, or `baselines read from the cache, measured 2026-11-28 14:20 UTC`."""
    if not baselines.get("cached"):
        return "baselines measured in this run"
    measured = baselines.get("measured")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(measured)) if measured else "at an unrecorded time"
    return f"baselines read from the cache ({baselines.get('cache', '?')}), measured {when}"
