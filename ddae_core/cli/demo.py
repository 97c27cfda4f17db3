"""`ddae demo`: the README's main job, the paper's result in miniature on the built-in data.

A few minutes of a 2-core CPU teach a diffusion model little, so the demo shows two things:
1. the bundled example (tiny-ddpm trained for hours on builtin:shapes, shipped with the tool): imported
   into the workspace, then probed live (the heatmap fills in), with its raw-pixel and random-init
   baselines, so the grid says what the layers learned;
2. a short training run of the user's own, so the live loss curve and sample grids are seen.
It ends by printing the bundled model's grid with its baselines. The bundled CIFAR-10 model (when this copy
has it) is imported too, for the app's Classify view, which opens on it. Without a bundled example (or
with --no-example) it probes the user's own run instead, as it always did.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..engine.config import preset_path
from ..jobs.specs import train_spec
from ..rundir import GRID, SAMPLES_DIR, RunStatus
from ..rundir.figures import percent
from .common import add_device, add_workspace, launch, workspace_of

DEMO_TIMESTEPS = "1,11,51,101"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: probe the bundled pretrained model live, and train one of your own")
    p.add_argument("--minutes", type=float, default=1.5, help="your own training run's time budget (default 1.5)")
    p.add_argument("--no-probe", action="store_true", help="skip the probe grid")
    p.add_argument("--no-example", action="store_true",
                   help="do not import the bundled example; probe your own short run instead")
    p.add_argument("--probe-images", type=int, default=4000,
                   help="training images for the probe heads (default 4000; test images: a quarter)")
    p.add_argument("--data", default="builtin:shapes", metavar="SPEC",
                   help="dataset of your run (default builtin:shapes)")
    add_device(p)
    add_workspace(p)
    p.set_defaults(func=run_demo)


def run_demo(args) -> int:
    from ..jobs import examples
    from ..jobs.examples import CLASSIFY_EXAMPLE, DEMO_EXAMPLE

    started = time.monotonic()
    example = None
    if not args.no_example and DEMO_EXAMPLE in examples.available():
        example = examples.manifest(DEMO_EXAMPLE)
        train_dir, _ = examples.install(workspace_of(args), DEMO_EXAMPLE)
        print(f"Imported the bundled example run {train_dir.name}: {example['title']}.", flush=True)
    photos = None
    if not args.no_example and CLASSIFY_EXAMPLE in examples.available():
        photos, _ = examples.install(workspace_of(args), CLASSIFY_EXAMPLE)
    probe_dir = None
    if example is not None and not args.no_probe:
        print("\nProbing what its layers know, live: a linear head per layer x noise level, and the same heads on "
              "raw pixels and on the network at random initialisation, measured now (the result says if a cache "
              "measured for exactly this grid was read instead).", flush=True)
        probe_dir = _probe(args, train_dir, f"demo: probe grid of the bundled {DEMO_EXAMPLE} model")
        if probe_dir is None:
            return 1
    own = _train_own(args)
    if own is None:
        return 1
    if example is None and not args.no_probe:
        print("\nProbing what its layers know: a linear classifier per layer x noise level.", flush=True)
        probe_dir = _probe(args, own, "demo: probe grid")
        if probe_dir is None:
            return 1
    minutes = (time.monotonic() - started) / 60
    print(f"\nDemo finished in {minutes:.1f} minutes. Your training run: {own.name}.")
    if probe_dir is not None:
        _print_result(probe_dir, bundled=example is not None)
    print("\nOpen them in the app: ddae-studio (or python main.py in a checkout)")
    if photos is not None:
        info = examples.manifest(CLASSIFY_EXAMPLE)
        print(f"Its Classify view opens on the bundled CIFAR-10 model ({photos.name}, best cell "
              f"{percent(info['best']['accuracy'])}): drop a photo of a cat or a truck on it, or run "
              f"ddae classify --run {photos.name} PHOTO.jpg")
    return 0


def _probe(args, parent: Path, name: str) -> Path | None:
    from ..jobs.eval_specs import probe_spec
    from ..jobs.examples import DEMO_PROBE

    spec = probe_spec(parent, timesteps=DEMO_TIMESTEPS, layers="all", device=args.device,
                      train_limit=args.probe_images, test_limit=max(1, args.probe_images // 4), name=name,
                      **DEMO_PROBE)
    probe_dir, status = launch(args, spec, name_chosen=False)
    return probe_dir if status == RunStatus.DONE else None


def _train_own(args) -> Path | None:
    spec = train_spec(config=preset_path("tiny-ddpm"), data=args.data, steps=100_000, device=args.device,
                      name=f"demo: tiny-ddpm on {args.data}", minutes=max(args.minutes, 1 / 60))
    print(f"\nTraining tiny-ddpm of your own on {args.data} for {args.minutes:g} minutes "
          "(the loss falls; samples are written as it goes).", flush=True)
    train_dir, status = launch(args, spec, name_chosen=False)
    if status != RunStatus.DONE:
        return None
    samples = sorted((train_dir / SAMPLES_DIR).glob("step_*.png"))
    if samples:
        print(f"samples: {samples[-1]}")
    return train_dir


def _print_result(probe_dir: Path, bundled: bool) -> None:
    from ..engine.evaluation.probe_job import baseline_summary
    from ..engine.evaluation.protocols import PROTOCOLS
    from ..engine.evaluation.report import format_grid

    grid = json.loads((probe_dir / GRID).read_text())
    timesteps = grid["timesteps"]
    labels = {t: grid["labels"].get(str(t), f"t={t}") for t in timesteps}
    cells = {int(t): row for t, row in grid["accuracy"].items()}
    whose = "the bundled model" if bundled else "your run"
    print(f"\nWhat the layers of {whose} know ({probe_dir.name}; protocol: {PROTOCOLS[grid['protocol']]}):")
    print(format_grid(timesteps, grid["layers"], cells, labels))
    best = grid["best"]
    classes = len(grid["classes"])
    print(f"Best layer x noise cell: {best['layer']} at {labels[best['timestep']]}: {percent(best['accuracy'])} "
          f"on {classes} classes (chance {100 / classes:.0f}%).")
    if grid.get("baselines"):
        print(baseline_summary(best["accuracy"], grid["baselines"]))
