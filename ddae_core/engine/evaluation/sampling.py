"""The `sample` job: draw images from a parent checkpoint's EMA model into a PNG grid."""

from __future__ import annotations

from pathlib import Path

import torch

from ...rundir import SAMPLES_DIR, SAMPLES_KEY, RunStatus
from ..grids import save_grid
from ..spec.run_spec import SampleSpec
from .common import open_context


def sample_run(spec: SampleSpec, run_dir: Path, reporter, workspace: Path) -> str:
    ctx = open_context(spec, run_dir, reporter, workspace)
    ctx.start(checkpoint=ctx.checkpoint_step)
    n, batch = spec.options.n, 256
    gen = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
    chunks = []
    for start in range(0, n, batch):
        if ctx.stopped():
            reporter.status(RunStatus.CANCELLED)
            return RunStatus.CANCELLED
        size = min(batch, n - start)

        def progress(i: int, total: int, start=start, size=size) -> None:
            reporter.progress(start * total + i * size, n * total, "sample")
        chunks.append(ctx.model.sample(size, sampler=spec.options.sampler, steps=spec.options.steps,
                                       generator=gen, callback=progress).cpu())
    path = save_grid(torch.cat(chunks), run_dir / SAMPLES_DIR / "grid.png")
    reporter.image(SAMPLES_KEY, ctx.checkpoint_step or 0, path)
    reporter.status(RunStatus.DONE)
    return RunStatus.DONE
