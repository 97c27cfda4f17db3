"""What 20 minutes of CPU pre-training buys: the fast probe grid against raw pixels and random weights.

    python -m bench.probe_quality [--minutes 20] [--preset tiny-ddpm] [--run RUN]

On ../shared/data/cifar10-mini: train the preset for the time budget, run the fast grid over timesteps
{1, 11, 21, 51, 101, 201} x all decoder taps. Every grid carries its own baselines (the same heads on raw
pixels and on the network at random initialisation, same protocol), so those are the comparators.
Also the trained grid with the standardized protocol (not the official one): the gap to the plain grid
is what the official probe's 15 epochs of Adam at 1e-3 leave unused when the pooled features are small.
Last line: `probe quality: best B% at (t, layer), raw pixels P%, random init R%`.
"""

from __future__ import annotations

import argparse

from ddae_core.engine.evaluation.report import format_grid
from ddae_core.jobs.eval_specs import probe_spec
from ddae_core.jobs.specs import create_job, execute
from ddae_core.rundir.figures import percent

from .common import cifar_mini_spec, existing_run, grid_result, train_tiny, workspace
from .results import record

TIMESTEPS = "1,11,21,51,101,201"


def probe(ws, parent, data: str, device: str, name: str, protocol: str = "fast") -> dict:
    run_dir = create_job(ws, probe_spec(parent, timesteps=TIMESTEPS, layers="all", data=data, device=device,
                                        name=name, protocol=protocol))
    if execute(run_dir, ws, handle_signals=False) != "done":
        raise SystemExit(f"probe {run_dir.name} failed; see its log")
    grid = grid_result(run_dir)
    cells = {int(t): row for t, row in grid["accuracy"].items()}
    print(f"\n{name}:")
    print(format_grid(grid["timesteps"], grid["layers"], cells, {int(t): s for t, s in grid["labels"].items()}))
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--preset", default="tiny-ddpm")
    parser.add_argument("--run", help="probe an existing train run instead of training")
    parser.add_argument("--workspace")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    data = cifar_mini_spec()
    ws = workspace(args.workspace)
    parent = existing_run(ws, args.run) if args.run else train_tiny(
        ws, data, minutes=args.minutes, preset=args.preset, name=f"bench quality {args.preset}")
    trained = probe(ws, parent, data, args.device, f"{args.preset}, {args.minutes:g} min on cifar10-mini")
    standard = probe(ws, parent, data, args.device, "the same, standardized protocol (not the official one)",
                     protocol="standardized")
    best, base = trained["best"], trained["baselines"]
    sbest, sbase = standard["best"], standard["baselines"]
    print(f"\nstandardized protocol (diagnostic, not the official one): best {percent(sbest['accuracy'])} "
          f"at (t={sbest['timestep']}, {sbest['layer']}), raw pixels {percent(sbase['pixels']['accuracy'])}, "
          f"random init {percent(sbase['random_init']['accuracy'])}")
    record("probe_quality",
           f"probe quality (fast protocol): best {percent(best['accuracy'])} at (t={best['timestep']}, "
           f"{best['layer']}), raw pixels {percent(base['pixels']['accuracy'])}, random init "
           f"{percent(base['random_init']['accuracy'])}  (standardised heads: {percent(sbest['accuracy'])})")


if __name__ == "__main__":
    main()
