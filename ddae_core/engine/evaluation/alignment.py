"""Alignment and uniformity of layer features (ddae-spec 7; Wang & Isola's eqs. 3-4).

Positive pairs are two noise draws of the same clean training image (no augmentation), features
L2-normalised. Per batch: alignment = mean ||x - y||^2, uniformity(z) = log mean_{i<j} exp(-2 ||z_i - z_j||^2),
reported as (u(x) + u(y)) / 2; batches are weighted by size. Lower is better for both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ...rundir import RunStatus
from ..checkpoint import load_model
from ..model import DDAEModel
from ..spec.run_spec import AlignSpec
from .common import open_context, parent_checkpoint, select_checkpoints
from .features import Stopped, feature_batches

log = logging.getLogger(__name__)


def _uniformity(z: torch.Tensor) -> torch.Tensor:
    if len(z) < 2:
        return torch.tensor(float("nan"))
    return torch.pdist(z, p=2).pow(2).mul(-2).exp().mean().log()


def alignment_uniformity(model: DDAEModel, images: torch.Tensor, timestep: int, layers: Sequence[str], *,
                         batch_size: int = 128, seed: int = 0, stop: Callable[[], bool] | None = None,
                         on_progress: Callable[[int, int], None] | None = None) -> dict[str, tuple[float, float]]:
    """{layer: (alignment, uniformity)} over `images` (uint8) at one noise level."""
    sums = {name: [0.0, 0.0] for name in layers}
    count, n = 0, len(images)
    for index, [(_, x), (_, y)] in feature_batches(model, images, [timestep, timestep], layers,
                                                   batch_size=batch_size, seed=seed, normalize=True, stop=stop):
        b = len(index)
        for name in layers:
            xs, ys = x[name].float(), y[name].float()
            sums[name][0] += float((xs - ys).norm(dim=1).pow(2).mean()) * b
            sums[name][1] += float((_uniformity(xs) + _uniformity(ys)) / 2) * b
        count += b
        if on_progress:
            on_progress(count, n)
    return {name: (a / count, u / count) for name, (a, u) in sums.items()}


def report_alignment(reporter, values: dict[str, tuple[float, float]], step: int) -> None:
    for name, (align, uniform) in values.items():
        reporter.report(f"align/{name}", align, step)
        reporter.report(f"uniform/{name}", uniform, step)


def make_monitor(reporter, images: torch.Tensor, layers: Sequence[str], timestep: int, seed: int = 0):
    """A training hook: alignment/uniformity of `layers` on a fixed subset at every checkpoint (label-free)."""
    def monitor(step: int, ema_model: DDAEModel) -> None:
        values = alignment_uniformity(ema_model, images, timestep, layers, seed=seed)
        report_alignment(reporter, values, step)
    return monitor


def align_run(spec: AlignSpec, run_dir: Path, reporter, workspace: Path) -> str:
    ctx = open_context(spec, run_dir, reporter, workspace, load_parent=False)
    ctx.parent_dir, ctx.parent_spec, _, _ = parent_checkpoint(workspace, spec)
    o = spec.options
    checkpoints = select_checkpoints(ctx.parent_dir, o.checkpoints)
    ctx.start(checkpoints=[s for s, _ in checkpoints])
    layers, t = list(o.layers or []), int(o.timestep or 0)    # align_spec wrote both: the config's when blank
    try:
        for i, (step, path) in enumerate(checkpoints):
            ctx.model = load_model(path, device=ctx.device)
            if i == 0:
                images = ctx.data("train", o.limit).images

            def progress(done: int, n: int, i=i, step=step) -> None:
                reporter.progress(i * n + done, len(checkpoints) * n, f"checkpoint {step}")
            values = alignment_uniformity(ctx.model, images, t, layers, batch_size=o.batch_size,
                                          seed=ctx.seed, stop=ctx.stopped, on_progress=progress)
            report_alignment(reporter, values, step)
            for name, (a, u) in values.items():
                log.info(f"step {step:>8}  {name:<7} alignment {a:.4f}  uniformity {u:.4f}")
    except Stopped:
        reporter.status(RunStatus.CANCELLED)
        return RunStatus.CANCELLED
    reporter.status(RunStatus.DONE)
    return RunStatus.DONE
