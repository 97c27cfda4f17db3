"""Shared pieces of the benchmarks: the shared data folder, a workspace, a briefly trained model."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ddae_core.engine.config import load_config
from ddae_core.jobs.specs import create_job, execute, train_spec
from ddae_core.rundir import find_run, resolve_workspace

ROOT = Path(__file__).resolve().parents[1]
CIFAR_MINI = ROOT.parent / "shared" / "data" / "cifar10-mini"


def cifar_mini_spec() -> str:
    if not CIFAR_MINI.is_dir():
        raise SystemExit(f"{CIFAR_MINI} is missing; these benchmarks use the shared CIFAR-10 subset beside the checkout.")
    return f"folder:{CIFAR_MINI}"


def workspace(path: str | None) -> Path:
    return resolve_workspace(path or ROOT / "bench-out" / "workspace")


def train_tiny(ws: Path, data: str, *, minutes: float | None = None, steps: int | None = None,
               preset: str | dict = "tiny-ddpm", name: str = "bench", device: str = "auto", **studio) -> Path:
    """Train `preset` (a name or a config) on `data` for a time budget or a number of steps; returns the run
    directory. `studio`: overrides of the config's studio section."""
    cfg = load_config(preset)
    cfg.setdefault("studio", {}).update({"sample_every_steps": 10**9, **studio})
    spec = train_spec(config=cfg, data=data, steps=steps or 10**6, device=device, name=name, minutes=minutes)
    run_dir = create_job(ws, spec)
    started = time.monotonic()
    status = execute(run_dir, ws, handle_signals=False)
    if status != "done":
        raise SystemExit(f"training {run_dir.name} ended {status}; see {run_dir / 'log.txt'}")
    print(f"trained {run_dir.name} in {(time.monotonic() - started) / 60:.1f} min", flush=True)
    return run_dir


def existing_run(ws: Path, ref: str) -> Path:
    return find_run(ws, ref)


def grid_result(run_dir: Path) -> dict:
    return json.loads((run_dir / "grid.json").read_text())
