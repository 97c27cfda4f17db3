"""Probe-grid protocols head to head: the fast protocol against the official one, timed in one run.

    python -m bench.probe_grid [--run RUN] [--train-minutes 5] [--timesteps 1,11,21] [--train-limit 5000]

Same checkpoint (a tiny-ddpm trained briefly on ../shared/data/cifar10-mini, or --run), same data, same
grid (all decoder taps x the timesteps), same optimiser, epochs and test pass. Both protocols run
through the real job path (run directory, events), so what is timed is what a user waits for; the fast
one with the extraction settings it picks for this device (bf16 autocast, channels_last, its batch size),
the official one in fp32. The raw-pixel and random-init baselines are left out unless --baselines: the
workspace keeps them per protocol, so timing them would time what earlier runs left behind.
Target: fast >= 20x faster, best-cell accuracy within 1 point.
Last line: `probe grid: speedup: Nx, best-cell accuracy difference: D points`.
"""

from __future__ import annotations

import argparse
import time

from ddae_core.engine.evaluation.report import format_grid
from ddae_core.jobs.eval_specs import probe_spec
from ddae_core.jobs.specs import create_job, execute

from .common import cifar_mini_spec, existing_run, grid_result, train_tiny, workspace


def timed_probe(ws, parent, protocol: str, args) -> tuple[float, dict]:
    spec = probe_spec(parent, timesteps=args.timesteps, layers="all", data=args.data, protocol=protocol,
                      epochs=args.epochs, views=args.views, train_limit=args.train_limit,
                      test_limit=args.test_limit, device=args.device, baselines=args.baselines,
                      name=f"bench {protocol}")
    run_dir = create_job(ws, spec)
    started = time.perf_counter()
    status = execute(run_dir, ws, handle_signals=False)
    elapsed = time.perf_counter() - started
    if status != "done":
        raise SystemExit(f"the {protocol} probe ended {status}; see {run_dir}")
    return elapsed, grid_result(run_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="an existing train run to probe (default: train tiny-ddpm briefly)")
    parser.add_argument("--workspace")
    parser.add_argument("--train-minutes", type=float, default=5.0)
    parser.add_argument("--data", help="data spec (default: ../shared/data/cifar10-mini)")
    parser.add_argument("--timesteps", default="1,11,21")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--views", type=int, default=1)
    parser.add_argument("--train-limit", type=int, default=5000)
    parser.add_argument("--test-limit", type=int, default=2000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--baselines", action="store_true", help="also train (and time) both baselines")
    args = parser.parse_args()
    args.data = args.data or cifar_mini_spec()
    ws = workspace(args.workspace)
    parent = existing_run(ws, args.run) if args.run else train_tiny(ws, args.data, minutes=args.train_minutes,
                                                                     name="bench probe-grid parent")
    results = {}
    for protocol in ("fast", "official"):
        elapsed, grid = timed_probe(ws, parent, protocol, args)
        results[protocol] = (elapsed, grid)
        cells = {int(t): row for t, row in grid["accuracy"].items()}
        labels = {int(t): text for t, text in grid["labels"].items()}
        print(f"\n{protocol} protocol: {elapsed:.1f} s", flush=True)
        print(format_grid(grid["timesteps"], grid["layers"], cells, labels), flush=True)
        best = grid["best"]
        print(f"best: t={best['timestep']} {best['layer']} {100 * best['accuracy']:.2f}%", flush=True)
    (fast_s, fast), (official_s, official) = results["fast"], results["official"]
    diff = 100 * abs(fast["best"]["accuracy"] - official["best"]["accuracy"])
    print(f"\nparent {parent.name}; split used: {fast.get('train_images', '?')} train / "
          f"{fast.get('test_images', '?')} test images (limits {args.train_limit} / {args.test_limit}); "
          f"timesteps {args.timesteps}; {len(fast['layers'])} layers; {args.epochs} epochs; {args.views} view(s)"
          f"{'; baselines included' if args.baselines else ''}")
    print(f"probe grid: speedup: {official_s / fast_s:.1f}x, best-cell accuracy difference: {diff:.2f} points")


if __name__ == "__main__":
    main()
