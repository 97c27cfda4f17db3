"""`ddae demo`: the README's main job, the paper's result in miniature on the built-in data.

Train tiny-ddpm on builtin:shapes for a few minutes, write a sample grid, then run a fast probe grid
over layers x noise levels on the trained model and print it as a table with the best cell.
"""

from __future__ import annotations

import json
import time

from ..config import preset_path
from ..jobs import train_spec
from .common import launch

DEMO_TIMESTEPS = "1,11,51,101"


def run_demo(args) -> int:
    from ..evaluation.specs import probe_spec

    started = time.monotonic()
    spec = train_spec(config=preset_path("tiny-ddpm"), data=args.data, steps=100_000, device=args.device,
                      name=f"demo: tiny-ddpm on {args.data}", minutes=max(args.minutes, 1 / 60))
    print(f"Training tiny-ddpm on {args.data} for {args.minutes:g} minutes "
          "(the loss falls; samples are written as it goes).", flush=True)
    train_dir, status = launch(args, spec)
    if status != "done":
        return 1
    samples = sorted((train_dir / "samples").glob("step_*.png"))
    if samples:
        print(f"samples: {samples[-1]}")
    if args.no_probe:
        return 0
    print("\nProbing what its layers know: a linear classifier per layer x noise level (fast protocol).",
          flush=True)
    spec = probe_spec(train_dir, timesteps=DEMO_TIMESTEPS, layers="all", device=args.device,
                      train_limit=args.probe_images, test_limit=max(1, args.probe_images // 4),
                      name="demo: probe grid")
    probe_dir, status = launch(args, spec)
    if status != "done":
        return 1
    grid = json.loads((probe_dir / "grid.json").read_text())
    best = grid["best"]
    minutes = (time.monotonic() - started) / 60
    print(f"\nDemo finished in {minutes:.1f} minutes. Workspace runs: {train_dir.name} (train), "
          f"{probe_dir.name} (probe).")
    print(f"Best layer x noise cell: {best['layer']} at t={best['timestep']}: {100 * best['accuracy']:.1f}% "
          f"on {len(grid['classes'])} classes (chance {100 / len(grid['classes']):.0f}%).")
    print("Open them in the app: python main.py")
    return 0
