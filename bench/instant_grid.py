"""The instant grid: a k-NN probe grid against the fast linear one, timed in the same run on a bundled example.

    python -m bench.instant_grid [--example shapes] [--train-limit 2500] [--test-limit 1000] [--timesteps 1,11,51]

Both grids run through the real job path (run directory, events) on the same imported example, data, split,
timesteps and layers: first `--protocol knn` (one clean extraction of the training images per timestep, then
cosine k-NN, no training), then `--protocol fast` (the official optimiser and epochs on cached features). What
is timed is what a user waits for, from the probe's start to its whole heatmap (after one small untimed
warm-up grid). Baselines are left out, as in
bench.probe_grid (the workspace keeps them per protocol). Goals: at least 5x sooner, and the k-NN best cell
within one noise level and one layer of the linear one.

Last line: `instant grid: k-NN heatmap K s, linear L s (Nx sooner); best cell k-NN (t=T, LAYER) A%,
linear (t=T, LAYER) B%`.
"""

from __future__ import annotations

import argparse
import tempfile

from ddae_core.engine import data as datasets
from ddae_core.engine.evaluation.report import format_grid
from ddae_core.jobs import examples
from ddae_core.rundir.figures import percent

from .common import workspace
from .probe_grid import EXAMPLE_TEST_LIMIT, EXAMPLE_TRAIN_LIMIT, cells_of, example_data, import_example, timed_probe
from .results import record

GOAL_SOONER = 5.0


def cell(grid: dict) -> str:
    best = grid["best"]
    return f"(t={best['timestep']}, {best['layer']}) {percent(best['accuracy'])}"


def cells_apart(a: dict, b: dict) -> tuple[int, int]:
    """How many noise levels and layers apart two grids' best cells are (the grids share their axes)."""
    t, layers = a["timesteps"], a["layers"]
    return (abs(t.index(a["best"]["timestep"]) - t.index(b["best"]["timestep"])),
            abs(layers.index(a["best"]["layer"]) - layers.index(b["best"]["layer"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", choices=sorted(examples.available()), default="shapes")
    parser.add_argument("--workspace", help="default: a temporary one")
    parser.add_argument("--timesteps", help="default: the example's shipped grid's")
    parser.add_argument("--layers", default="all")
    parser.add_argument("--epochs", type=int, default=15, help="the linear heads' epochs")
    parser.add_argument("--train-limit", type=int, default=EXAMPLE_TRAIN_LIMIT)
    parser.add_argument("--test-limit", type=int, default=EXAMPLE_TEST_LIMIT)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    args.views, args.baselines = 1, False
    with tempfile.TemporaryDirectory(prefix="bench-instant-grid-") as tmp:
        ws = workspace(args.workspace or tmp)
        parent, shipped_timesteps = import_example(ws, args.example)
        args.data = example_data(args.example)
        args.timesteps = args.timesteps or ",".join(map(str, shipped_timesteps))
        # Generated or decoded once before either clock starts, so the first grid does not pay for the data.
        for split, limit in (("train", args.train_limit), ("test", args.test_limit)):
            datasets.load_split(args.data, split, data_root=ws / "data", seed=0, limit=limit)
        # One small untimed grid first: the first job in a process pays for loading kernels and modules.
        timed_probe(ws, parent, "knn", argparse.Namespace(**{**vars(args), "train_limit": 64, "test_limit": 64}))
        knn, linear = (timed_probe(ws, parent, protocol, args) for protocol in ("knn", "fast"))
    for name, timed in (("k-NN", knn), ("linear (fast)", linear)):
        grid = timed.grid
        print(f"\n{name}: {timed.seconds:.1f} s ({timed.cpu_seconds:.1f} s of CPU time)")
        print(format_grid(grid["timesteps"], grid["layers"], cells_of(grid),
                          {int(t): text for t, text in grid["labels"].items()}), flush=True)
    sooner = linear.seconds / knn.seconds
    apart = cells_apart(linear.grid, knn.grid)
    print(f"\n{args.example} on {args.data}: {knn.grid['train_images']} train / {knn.grid['test_images']} test "
          f"images; timesteps {args.timesteps}; {len(knn.grid['layers'])} layers; linear {args.epochs} epochs")
    print(f"goals (>= {GOAL_SOONER:g}x sooner, best cells <= 1 noise level and 1 layer apart): "
          f"{sooner:.1f}x, {apart[0]} noise level(s) and {apart[1]} layer(s) apart: "
          f"{'met' if sooner >= GOAL_SOONER and max(apart) <= 1 else 'NOT met'}")
    line = (f"instant grid: k-NN heatmap {knn.seconds:.1f} s, linear {linear.seconds:.1f} s ({sooner:.1f}x sooner); "
            f"best cell k-NN {cell(knn.grid)}, linear {cell(linear.grid)}")
    record("instant_grid", line)


if __name__ == "__main__":
    main()
