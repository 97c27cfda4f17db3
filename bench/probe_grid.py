"""Probe-grid protocols head to head: the fast protocol against the official one, timed, and how far apart.

    python -m bench.probe_grid --example shapes      (or --example cifar10; the bundled models)
    python -m bench.probe_grid [--run RUN] [--train-minutes 5] [--timesteps 1,11,21] [--train-limit 5000]

Same checkpoint, same data, same grid (the decoder taps x the timesteps), same optimiser, epochs and test
pass. Both protocols run through the real job path (run directory, events), so what is timed is what a
user waits for; the fast one with the extraction settings it picks for this device (bf16 autocast,
channels_last, its batch size and streams), the official one in fp32.

The model: `--example NAME` imports a bundled example into a temporary workspace as `ddae import-example`
does (shapes is probed on builtin:shapes, cifar10 on ../shared/data/cifar10-mini, at the timesteps of its
shipped grid), a model whose features stand well above raw pixels, which is where the two protocols must
agree. Without it: a tiny-ddpm trained briefly on ../shared/data/cifar10-mini, or --run.
The raw-pixel and random-init baselines are left out unless --baselines (the workspace keeps them per
protocol, so timing them would time what earlier runs left behind).

Agreement is whole-grid (bench/grid_agreement.py). Goals: speed-up >= 20x; mean |cell diff| <= 1 point,
Spearman over cells >= 0.9, the best cells at most one noise level and one layer apart.
Last line: `probe grid (NAME): speedup Nx, mean |cell diff| D points, max M points, rank correlation R,
best cell official (t=T, LAYER) fast (t=T, LAYER)`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from ddae_core.engine import data as datasets
from ddae_core.engine.evaluation.report import format_grid
from ddae_core.jobs import examples
from ddae_core.jobs.eval_specs import probe_spec
from ddae_core.jobs.specs import create_job, execute
from ddae_core.rundir import GRID

from .common import cifar_mini_spec, existing_run, grid_result, train_tiny, workspace
from .grid_agreement import GOAL_BEST_APART, GOAL_MEAN_DIFF, GOAL_RANK_CORRELATION, agreement_line, grid_agreement

# Defaults for a bundled example: about 20 minutes on one core for shapes (the official protocol's 15 epochs
# x 4 timesteps x 2,500 images are 150,000 fp32 forward passes; the demo's 4,000 would take 32 minutes).
EXAMPLE_TRAIN_LIMIT, EXAMPLE_TEST_LIMIT = 2500, 1000


def example_data(name: str) -> str:
    """What an example's grid is measured on: shapes on its training data, cifar10 on the shared subset."""
    return cifar_mini_spec() if name == "cifar10" else "builtin:shapes"


def import_example(ws: Path, name: str) -> tuple[Path, list[int]]:
    """The example's train run, copied into `ws` as `ddae import-example` does, and its shipped grid's timesteps."""
    train_dir, probe_dir = examples.install(ws, name)
    return train_dir, json.loads((probe_dir / GRID).read_text())["timesteps"]


class Timed(NamedTuple):
    seconds: float          # wall clock: what a user waits for
    cpu_seconds: float      # this process's CPU time (all its threads): steadier than wall time on a busy machine
    grid: dict              # the run's grid.json


def timed_probe(ws, parent, protocol: str, args) -> Timed:
    # The heads' batch and lr: the probe's own defaults (the official 128 and 1e-3) unless set.
    head = {key: getattr(args, key) for key in ("batch_size", "lr") if getattr(args, key, None) is not None}
    spec = probe_spec(parent, timesteps=args.timesteps, layers=args.layers, data=args.data, protocol=protocol,
                      epochs=args.epochs, views=args.views, train_limit=args.train_limit,
                      test_limit=args.test_limit, device=args.device, baselines=args.baselines,
                      name=f"bench {protocol}", **head)
    run_dir = create_job(ws, spec)
    started, cpu_started = time.perf_counter(), time.process_time()
    status = execute(run_dir, ws, handle_signals=False)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if status != "done":
        raise SystemExit(f"the {protocol} probe ended {status}; see {run_dir}")
    return Timed(elapsed, cpu, grid_result(run_dir))


def both_protocols(ws: Path, parent: Path, args, verbose: bool = True) -> dict[str, Timed]:
    """{protocol: its timed grid} for the fast and the official protocol, fast first."""
    # Generated or decoded once before either clock starts (builtin data is cached per process, files on disk),
    # so the first protocol does not pay for the data.
    for split, limit in (("train", args.train_limit), ("test", args.test_limit)):
        datasets.load_split(args.data, split, data_root=ws / "data", seed=0, limit=limit)
    results = {}
    for protocol in ("fast", "official"):
        results[protocol] = timed = timed_probe(ws, parent, protocol, args)
        grid = timed.grid
        if verbose:
            print(f"\n{protocol} protocol: {timed.seconds:.1f} s ({timed.cpu_seconds:.1f} s of CPU time)", flush=True)
            print(format_grid(grid["timesteps"], grid["layers"], cells_of(grid),
                              {int(t): text for t, text in grid["labels"].items()}), flush=True)
    return results


def cells_of(grid: dict) -> dict[int, dict[str, float]]:
    return {int(t): row for t, row in grid["accuracy"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--example", choices=sorted(examples.available()), help="probe a bundled example model")
    source.add_argument("--run", help="an existing train run to probe (default: train tiny-ddpm briefly)")
    parser.add_argument("--workspace", help="default: a temporary one with --example, else bench-out/workspace")
    parser.add_argument("--train-minutes", type=float, default=5.0)
    parser.add_argument("--data", help="data spec (default: the example's, or ../shared/data/cifar10-mini)")
    parser.add_argument("--timesteps", help="default: the example's shipped grid's, or 1,11,21")
    parser.add_argument("--layers", default="all")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--views", type=int, default=1)
    parser.add_argument("--batch-size", type=int, help="the heads' batch (default: the probe's, the official 128)")
    parser.add_argument("--lr", type=float, help="the heads' Adam lr (default: the probe's, the official 1e-3)")
    parser.add_argument("--train-limit", type=int, help=f"default {EXAMPLE_TRAIN_LIMIT} with --example, else 5000")
    parser.add_argument("--test-limit", type=int, help=f"default {EXAMPLE_TEST_LIMIT} with --example, else 2000")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--baselines", action="store_true", help="also train (and time) both baselines")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-probe-grid-") as tmp:
        if args.example:
            ws = workspace(args.workspace or tmp)
            parent, shipped_timesteps = import_example(ws, args.example)
            args.data = args.data or example_data(args.example)
            args.timesteps = args.timesteps or ",".join(map(str, shipped_timesteps))
            args.train_limit = args.train_limit or EXAMPLE_TRAIN_LIMIT
            args.test_limit = args.test_limit or EXAMPLE_TEST_LIMIT
            name = args.example
        else:
            ws = workspace(args.workspace)
            args.data = args.data or cifar_mini_spec()
            args.timesteps = args.timesteps or "1,11,21"
            args.train_limit, args.test_limit = args.train_limit or 5000, args.test_limit or 2000
            parent = existing_run(ws, args.run) if args.run else train_tiny(
                ws, args.data, minutes=args.train_minutes, name="bench probe-grid parent")
            name = f"run {parent.name}"
        results = both_protocols(ws, parent, args)
    fast_s, official_s = results["fast"].seconds, results["official"].seconds
    fast, official = results["fast"].grid, results["official"].grid
    cpu = {protocol: timed.cpu_seconds for protocol, timed in results.items()}
    agreement = grid_agreement(official["timesteps"], official["layers"], cells_of(official), cells_of(fast))
    b_off, b_fast = official["best"], fast["best"]
    print(f"\nparent {parent.name} on {args.data}; split used: {fast.get('train_images', '?')} train / "
          f"{fast.get('test_images', '?')} test images; timesteps {args.timesteps}; {len(fast['layers'])} layers; "
          f"{args.epochs} epochs; {args.views} view(s){'; baselines included' if args.baselines else ''}")
    print(f"fast {fast_s:.1f} s, official {official_s:.1f} s (CPU time {cpu['fast']:.1f} s and {cpu['official']:.1f} s: "
          f"{cpu['official'] / cpu['fast']:.1f}x); best cells: official {100 * b_off['accuracy']:.1f}%, "
          f"fast {100 * b_fast['accuracy']:.1f}% ({100 * abs(b_off['accuracy'] - b_fast['accuracy']):.2f} points "
          f"apart), {agreement.best_apart[0]} noise level(s) and {agreement.best_apart[1]} layer(s) apart")
    print(f"goals (mean |cell diff| <= {GOAL_MEAN_DIFF:g} point, rank correlation >= {GOAL_RANK_CORRELATION:g}, "
          f"best cells <= {GOAL_BEST_APART} apart) over {agreement.cells} cells: "
          f"{'met' if agreement.meets_goals() else 'NOT met'}")
    print(agreement_line(name, official_s / fast_s, agreement))


if __name__ == "__main__":
    main()
