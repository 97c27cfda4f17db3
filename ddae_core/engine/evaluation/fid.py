"""The `fid` job: FID of a run's EMA samples against its training set, one value per checkpoint.

The official protocol (ddae-spec 2, "FID protocol"): 50,000 samples from the EMA model, deterministic
DDIM-100 or EDM Heun-18, scored by pytorch-fid against the training images. Here `n` and the sampler
are options; the reference statistics of a dataset are computed once and cached in the workspace
(data/fid-stats/), keyed by dataset, resolution, feature size and the weights file's hash.
Each checkpoint's value is a `fid` metric at its step, written the moment it is known, so a cancelled
job keeps the checkpoints it finished, and a resumed one skips them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path

import numpy as np
import torch

from ...rundir import (
    FID_RESULTS,
    SAMPLES_KEY,
    ArtifactKind,
    EventType,
    ProcessLock,
    RunStatus,
    atomic_write,
    atomic_write_text,
    sample_name,
)
from ..checkpoint import load_model
from ..device import amp_dtype_for
from ..grids import save_grid
from ..spec.options import FidOptions
from ..spec.run_spec import FidSpec
from .common import EvalContext, open_context, parent_checkpoint, select_checkpoints
from .features import Stopped
from .fid_label import FID_KEY, NONSTANDARD_KEY, describe, is_standard
from .inception import (
    WEIGHTS_SHA256,
    ActivationStats,
    activations,
    file_sha256,
    find_weights,
    frechet_distance,
    load_inception,
    require_library,
    to_uint8,
)

log = logging.getLogger(__name__)

RESULTS = FID_RESULTS
STATS_DIR = ("data", "fid-stats")
GRID_IMAGES = 64                     # the first samples of each checkpoint, kept as a grid to look at


def stats_path(workspace: Path, data: str, resolution: int, dims: int, weights_sha256: str) -> Path:
    """data/fid-stats/<dataset>-<hash>-<res>px-d<dims>-w<weights hash>.npz: one file per dataset and weights."""
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", data).strip("_")[:48]
    key = hashlib.sha1(data.encode()).hexdigest()[:8]
    return Path(workspace).joinpath(*STATS_DIR) / f"{slug}-{key}-{resolution}px-d{dims}-w{weights_sha256[:8]}.npz"


def _read_stats(path: Path) -> tuple[np.ndarray, np.ndarray, int] | None:
    try:
        with np.load(path) as f:
            return f["mu"], f["sigma"], int(f["n"])
    except FileNotFoundError:
        return None
    except (OSError, KeyError, ValueError) as exc:
        log.info(f"FID statistics {path} cannot be read ({exc.__class__.__name__}); computing them again")
        return None


def _write_stats(path: Path, mu: np.ndarray, sigma: np.ndarray, n: int, data: str) -> None:
    atomic_write(path, lambda fh: np.savez(fh, mu=mu, sigma=sigma, n=n, data=data), binary=True)


def reference_stats(ctx: EvalContext, inception, data: str, resolution: int, dims: int, weights_sha256: str,
                    batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of the training split's Inception features, from the workspace cache or computed into it.

    The jobs of a sweep start together: one computes the statistics under a lock beside the file while
    the others wait for it (still answering a cancel), then read what it wrote.
    """
    path = stats_path(ctx.workspace, data, resolution, dims, weights_sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = ProcessLock(path.with_name(path.name + ".lock"))
    waited = False
    while not lock.acquire():
        if not waited:
            log.info(f"reference statistics: another job is computing {path.name}; waiting for it")
            ctx.reporter.progress(0, 0, "waiting for reference statistics")
            waited = True
        if ctx.stopped():
            raise Stopped
        time.sleep(1)
    try:
        return _cached_or_computed(ctx, inception, path, data, dims, batch_size)
    finally:
        lock.release()


def _cached_or_computed(ctx: EvalContext, inception, path: Path, data: str, dims: int,
                        batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    cached = _read_stats(path)
    if cached is not None:
        log.info(f"reference statistics: {path} ({cached[2]} images)")
        return cached[0], cached[1]
    images = ctx.data("train").images
    stats = ActivationStats(dims)
    for start in range(0, len(images), batch_size):
        if ctx.stopped():
            raise Stopped
        stats.update(activations(inception, images[start:start + batch_size]))
        ctx.reporter.progress(min(start + batch_size, len(images)), len(images), "reference statistics")
    _write_stats(path, stats.mean, stats.sigma, stats.n, data)
    log.info(f"reference statistics: {stats.n} training images -> {path}")
    return stats.mean, stats.sigma


def sample_stats(ctx: EvalContext, model, inception, step: int, index: int, count: int) -> ActivationStats:
    """Inception statistics of n samples of `model` (the same noise at every checkpoint); raises Stopped."""
    o: FidOptions = ctx.opts
    n, batch = o.n, o.batch_size
    stats = ActivationStats(o.dims)
    gen = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    for start in range(0, n, batch):
        if ctx.stopped():
            raise Stopped
        size = min(batch, n - start)

        def progress(i: int, total: int, start=start, size=size) -> None:
            done = start * total + i * size
            ctx.reporter.progress(index * n * total + done, count * n * total, f"checkpoint {step}")
        images = to_uint8(model.sample(size, sampler=o.sampler, steps=o.steps,
                                       generator=gen, callback=progress))
        if start == 0:
            path = save_grid(images[:GRID_IMAGES].float() / 255, ctx.run_dir / sample_name(step))
            ctx.reporter.image(SAMPLES_KEY, step, path)
        stats.update(activations(inception, images))
    return stats


def _results(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / RESULTS).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def report_fid(reporter, fid: float, step: int, weights_sha256: str, dims: int) -> None:
    """The `fid` point with what computed it (the weights' SHA-256, dims), and the non-standard mark when it is."""
    value = float(fid)
    reporter.event(EventType.METRIC, key=FID_KEY, step=int(step), value=value if np.isfinite(value) else None,
                   inception_sha256=weights_sha256, dims=int(dims))
    if not is_standard(weights_sha256, dims):
        reporter.report(NONSTANDARD_KEY, 1.0, step)


def fid_run(spec: FidSpec, run_dir: Path, reporter, workspace: Path) -> str:
    require_library()
    o = spec.options
    ctx = open_context(spec, run_dir, reporter, workspace, load_parent=False)
    weights = find_weights(workspace, o.inception)   # before any sampling: one sentence if missing
    ctx.parent_dir, ctx.parent_spec, _, _ = parent_checkpoint(workspace, spec)
    checkpoints = select_checkpoints(ctx.parent_dir, o.checkpoints)
    results = _results(run_dir)
    done = {int(s): v for s, v in (results.get("fid") or {}).items()}
    todo = [(s, p) for s, p in checkpoints if s not in done]
    ctx.start(checkpoints=[s for s, _ in checkpoints], **({"scored_before": sorted(done)} if done else {}))
    sha = file_sha256(weights)
    if sha != WEIGHTS_SHA256:
        log.info(f"note: {weights} is not the standard FID Inception file (SHA-256 {sha[:12]}..., expected "
              f"{WEIGHTS_SHA256[:12]}...), so these FIDs are not comparable with published ones")
    dims = o.dims
    standard, label = is_standard(sha, dims), describe(sha, dims)
    inception = load_inception(weights, dims, ctx.device)
    data = spec.data or ctx.parent_spec.get("data") or "builtin:shapes"
    results.update({"data": data, "n": o.n, "sampler": o.sampler, "steps": o.steps, "dims": dims,
                    "inception": str(weights),
                    "inception_sha256": sha, "standard": standard,
                    "fid": {str(s): v for s, v in sorted(done.items())}})
    try:
        ref = None
        for i, (step, path) in enumerate(todo):
            ctx.model = load_model(path, device=ctx.device)
            ctx.model.amp_dtype = amp_dtype_for(ctx.device, o.amp)
            if ref is None:
                results["sampler"] = o.sampler or getattr(ctx.model.framework, "default_sampler", "heun")
                ref = reference_stats(ctx, inception, data, ctx.model.resolution, dims, sha, o.batch_size)
                results["reference"] = str(stats_path(workspace, data, ctx.model.resolution, dims, sha))
            stats = sample_stats(ctx, ctx.model, inception, step, i, len(todo))
            fid = frechet_distance(stats.mean, stats.sigma, *ref)
            report_fid(reporter, fid, step, sha, dims)
            results["fid"][str(step)] = fid
            atomic_write_text(run_dir / RESULTS, json.dumps(results, indent=1))
            log.info(f"step {step:>8}  FID {fid:.3f}  ({stats.n} samples)" + (f"  {label}" if label else ""))
    except Stopped:
        reporter.status(RunStatus.CANCELLED)
        return RunStatus.CANCELLED
    if not todo:
        log.info("every checkpoint already has its FID")
    reporter.artifact(ArtifactKind.FILE, run_dir / RESULTS)
    reporter.status(RunStatus.DONE)
    return RunStatus.DONE
