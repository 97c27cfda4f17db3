"""The `import` job: an official DDAE checkpoint, a diffusers DDPM folder or an EDM pickle becomes a run that
evaluations can name as parent."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch

from ...rundir import ArtifactKind, RunStatus, checkpoint_path
from ..checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    atomic_torch_save,
    check_finite,
    is_official,
    load_into,
    load_model,
    read_checkpoint,
)
from ..config import parse_model_config
from ..importers import source_state
from ..model import DDAEModel, build_model
from ..spec.run_spec import ImportSpec


def load_import(source: Path, config: dict, fmt: str = "official") -> tuple[dict, DDAEModel, DDAEModel]:
    """(the raw checkpoint, its EMA model, its raw model) as an import reads them; CheckpointError if it cannot.

    Run by create_job too, so that a checkpoint that cannot be imported is refused before its run exists.
    A diffusers folder or EDM pickle holds one set of weights, which serves as both.
    """
    if fmt != "official":
        model = build_model(parse_model_config(config))
        load_into(model, source_state(source, fmt, config), source)
        check_finite(model, source)
        return {}, model.eval(), model
    raw = read_checkpoint(source)
    ema_model = load_model(source, config, weights="ema" if not is_official(raw) or "EMA" in raw else "raw")
    has_raw = not is_official(raw) or "MODEL" in raw
    model = load_model(source, config, weights="raw") if has_raw else ema_model
    return raw, ema_model, model


def import_run(spec: ImportSpec, run_dir: Path, reporter, workspace: Path) -> str:
    source = Path(spec.options.source)
    reporter.status(RunStatus.RUNNING, pid=os.getpid(), host=socket.gethostname(), device="cpu")
    raw, ema_model, model = load_import(source, spec.config, spec.options.format)
    step_value = (raw.get("EMA") or {}).get("step") if is_official(raw) else raw.get("step")
    step = int(step_value.reshape(-1)[0]) if isinstance(step_value, torch.Tensor) else int(step_value or 0)
    path = checkpoint_path(run_dir, step)
    atomic_torch_save({"format": FORMAT, "version": FORMAT_VERSION, "config": spec.config, "step": step,
                       "model": model.net.state_dict(), "ema": ema_model.net.state_dict(), "ema_updates": step,
                       "imported_from": str(source)}, path)
    reporter.artifact(ArtifactKind.CHECKPOINT, path, step=step)
    reporter.status(RunStatus.DONE)
    return RunStatus.DONE
