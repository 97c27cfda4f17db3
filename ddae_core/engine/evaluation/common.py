"""What every evaluation job shares: its parent model, its data, its report of status and results."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ...rundir import RunStatus, find_run, list_checkpoints, read_spec, resolve_checkpoint
from .. import data as datasets
from ..checkpoint import load_model
from ..device import amp_dtype_for, describe, resolve_device
from ..errors import UserError
from ..model import DDAEModel
from ..reporting import Reporter

log = logging.getLogger(__name__)


@dataclass
class EvalContext:
    """An evaluation job's run directory, options, device, and (once loaded) its parent's EMA model."""

    run_dir: Path
    reporter: Reporter
    workspace: Path
    spec: dict
    device: torch.device
    opts: dict = field(default_factory=dict)
    parent_dir: Path | None = None
    parent_spec: dict | None = None
    checkpoint_step: int | None = None
    model: DDAEModel | None = None

    @property
    def seed(self) -> int:
        return int(self.opts.get("seed", 0))

    def data(self, split: str, limit: int | None = None) -> datasets.ImageData:
        """The evaluation's dataset split (its own data spec, else the parent's), at the model's resolution."""
        spec = self.spec.get("data") or (self.parent_spec or {}).get("data") or "builtin:shapes"
        # The data seed is fixed, not the run's seed: a folder without train/test folders is split by it,
        # and a test image must never be another evaluation's training image.
        loaded = datasets.load_split(spec, split, resolution=self.model.resolution if self.model else None,
                                     data_root=self.workspace / "data", seed=0, limit=limit)
        if loaded.note:
            log.info(f"data ({split}): {loaded.note}")
        return loaded

    def start(self, **fields) -> None:
        self.reporter.status(RunStatus.RUNNING, pid=os.getpid(), host=socket.gethostname(),
                             device=describe(self.device), **fields)

    def stopped(self) -> bool:
        return self.reporter.should_stop()


def parent_checkpoint(workspace: Path, spec: dict) -> tuple[Path, dict, int, Path]:
    """(parent run dir, parent spec, checkpoint step, checkpoint path) named by an evaluation spec."""
    parent = spec.get("parent") or {}
    if not parent.get("run"):
        raise UserError(f"Run {spec.get('id')} names no parent run to evaluate.")
    parent_dir = find_run(workspace, parent["run"])
    step, path = resolve_checkpoint(parent_dir, parent.get("checkpoint", "latest"))
    return parent_dir, read_spec(parent_dir), step, path


def select_checkpoints(parent_dir: Path, which) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoints `which` names: "all", "latest", or a list of steps (all must exist)."""
    checkpoints = list_checkpoints(parent_dir)
    if which == "all":
        return checkpoints
    if which == "latest":
        return [resolve_checkpoint(parent_dir, "latest")]
    wanted = {int(s) for s in (which if isinstance(which, (list, tuple)) else [which])}
    missing = sorted(wanted - {s for s, _ in checkpoints})
    if missing:
        have = ", ".join(str(s) for s, _ in checkpoints[-6:]) or "none yet"
        raise UserError(f"Run {parent_dir.name} has no checkpoint at step {missing[0]}; it has {have}.")
    return [(s, p) for s, p in checkpoints if s in wanted]


def open_context(run_dir: Path, reporter: Reporter, workspace: Path, load_parent: bool = True) -> EvalContext:
    """Read the spec, pick the device, and load the parent's EMA model in eval mode."""
    spec = read_spec(run_dir)
    device = resolve_device((spec.get("device") or {}).get("request", "auto"))
    ctx = EvalContext(run_dir=Path(run_dir), reporter=reporter, workspace=workspace, spec=spec, device=device,
                      opts=dict(spec.get("options") or {}))
    torch.manual_seed(ctx.seed)
    if load_parent:
        ctx.parent_dir, ctx.parent_spec, ctx.checkpoint_step, path = parent_checkpoint(workspace, spec)
        ctx.model = load_model(path, weights=ctx.opts.get("weights", "ema"), device=device)
        ctx.model.amp_dtype = amp_dtype_for(device, ctx.opts.get("amp", "auto"))
    return ctx
