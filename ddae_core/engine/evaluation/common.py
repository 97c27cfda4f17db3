"""What every evaluation job shares: its parent model, its data, its report of status and results."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...rundir import RunStatus, find_run, list_checkpoints, read_spec, resolve_checkpoint
from .. import data as datasets
from ..checkpoint import load_model
from ..device import amp_dtype_for, describe, resolve_device
from ..errors import UserError
from ..model import DDAEModel
from ..reporting import Reporter
from ..spec.run_spec import RunSpec

log = logging.getLogger(__name__)


@dataclass
class EvalContext:
    """An evaluation job's run directory, typed spec, device, and (once loaded) its parent's EMA model."""

    run_dir: Path
    reporter: Reporter
    workspace: Path
    spec: RunSpec
    device: torch.device
    parent_dir: Path | None = None
    parent_spec: dict | None = None     # the parent's spec.yaml as it is: a train or an import run's
    checkpoint_step: int | None = None
    model: DDAEModel | None = None

    @property
    def opts(self) -> Any:
        """The kind's options model (options.py): ProbeOptions for a probe, ..."""
        return self.spec.options

    @property
    def seed(self) -> int:
        return int(self.spec.options.seed)

    def data(self, split: str, limit: int | None = None) -> datasets.ImageData:
        """The evaluation's dataset split (its own data spec, else the parent's), at the model's resolution."""
        spec = self.spec.data or (self.parent_spec or {}).get("data") or "builtin:shapes"
        # The data seed is fixed, not the run's seed: a folder without train/test folders is split by it,
        # and a test image must never be another evaluation's training image.
        loaded = datasets.load_split(spec, split, resolution=self.model.data_resolution if self.model else None,
                                     data_root=self.workspace / "data", seed=0, limit=limit)
        if loaded.note:
            log.info(f"data ({split}): {loaded.note}")
        return loaded

    def start(self, **fields) -> None:
        self.reporter.status(RunStatus.RUNNING, pid=os.getpid(), host=socket.gethostname(),
                             device=describe(self.device), **fields)

    def stopped(self) -> bool:
        return self.reporter.should_stop()


def parent_checkpoint(workspace: Path, spec: RunSpec) -> tuple[Path, dict, int, Path]:
    """(parent run dir, parent spec, checkpoint step, checkpoint path) named by an evaluation spec."""
    if spec.parent is None:
        raise UserError(f"Run {spec.id} names no parent run to evaluate.")
    parent_dir = find_run(workspace, spec.parent.run)
    step, path = resolve_checkpoint(parent_dir, spec.parent.checkpoint)
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


def open_context(spec: RunSpec, run_dir: Path, reporter: Reporter, workspace: Path,
                 load_parent: bool = True) -> EvalContext:
    """Pick the device and load the parent's EMA model in eval mode."""
    device = resolve_device(spec.device.request)
    ctx = EvalContext(run_dir=Path(run_dir), reporter=reporter, workspace=workspace, spec=spec, device=device)
    torch.manual_seed(ctx.seed)
    if load_parent:
        ctx.parent_dir, ctx.parent_spec, ctx.checkpoint_step, path = parent_checkpoint(workspace, spec)
        ctx.model = load_model(path, device=device)
        ctx.model.amp_dtype = amp_dtype_for(device, spec.options.amp)
    return ctx
