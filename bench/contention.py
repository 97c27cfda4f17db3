"""Jobs that share the CPU: two tiny-ddpm trainings at once against one alone, each started as the queue starts it.

    python -m bench.contention [--seconds 60] [--jobs 2] [--threads N] [--data builtin:shapes]

First one training alone (a scheduler with one CPU slot, so its thread budget is every core), then
`--jobs` trainings together (a scheduler with that many CPU slots: cores // slots threads each). Each
runs for `--seconds` of training; the rates are read from the runs' own events over the span in which
all of a group train, past their first steps. `--threads N` gives every job N threads instead of its
budget (DDAE_CPU_THREADS), e.g. the core count to see what oversubscription costs.
Goal (issue 13): together >= 90% of one alone's images/s, and none under 40%.
Last line: `contention: together N% of alone, slowest N%`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from db import Store
from ddae_core.engine.config import load_config
from ddae_core.engine.cpu_threads import THREADS_ENV, cpu_cores
from ddae_core.jobs.specs import train_spec

from .queued import TrainTrace, group_rates, queue_spec, serve
from .results import record


def training_spec(args, name: str) -> dict:
    """tiny-ddpm for a time budget of args.seconds, on the CPU, with no sample grids before its end."""
    cfg = load_config(args.preset)
    cfg.setdefault("studio", {}).update(sample_every_steps=10**9, checkpoint_every_steps=10**9, sample_steps=2,
                                        log_every_steps=1)
    cfg["n_sample"] = 4
    return train_spec(config=cfg, data=args.data, steps=10**6, device="cpu", gpus=0, name=name,
                      minutes=args.seconds / 60, batch_size=args.batch)


def run_group(store: Store, args, n_jobs: int) -> tuple[list[TrainTrace], int | None]:
    """Train n_jobs at once on a scheduler with n_jobs CPU slots; their traces and each one's thread budget."""
    runs = [queue_spec(store, training_spec(args, f"contention {n_jobs}/{i + 1}")) for i in range(n_jobs)]
    scheduler = serve(store, runs, cpu_slots=n_jobs, timeout_s=args.seconds * 3 + 120)
    return [TrainTrace.read(store.run_dir(run)) for run in runs], scheduler.cpu_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="training time of each job (default 60)")
    parser.add_argument("--jobs", type=int, default=2, help="trainings that share the CPU (default 2)")
    parser.add_argument("--threads", type=int, help="threads of every job instead of its budget")
    parser.add_argument("--preset", default="tiny-ddpm")
    parser.add_argument("--batch", type=int, help="batch size (default: the preset's)")
    parser.add_argument("--data", default="builtin:shapes")
    parser.add_argument("--workspace", help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    if args.threads is not None:
        os.environ[THREADS_ENV] = str(args.threads)
    with tempfile.TemporaryDirectory(prefix="ddae-contention-") as tmp:
        ws = Path(args.workspace or tmp).expanduser().resolve()
        for sub in ("runs", "data"):
            (ws / sub).mkdir(parents=True, exist_ok=True)
        with Store.open(ws) as store:
            print(f"{cpu_cores()} cores; {args.preset}, {args.seconds:g} s of training per job, data {args.data}",
                  flush=True)
            (alone,), threads = run_group(store, args, 1)
            (alone_rate,), span = group_rates([alone])
            print(f"alone ({alone.device or f'{threads} threads'}): "
                  f"{_rate(alone_rate)} over {span:.0f} s", flush=True)
            together, threads = run_group(store, args, args.jobs)
            rates, span = group_rates(together)
            for i, (trace, rate) in enumerate(zip(together, rates), 1):
                print(f"together, job {i} ({trace.device or f'{threads} threads'}): {_rate(rate)}", flush=True)
            print(f"  over the {span:.0f} s all {args.jobs} trained at once", flush=True)
    if not alone_rate or None in rates:
        raise SystemExit("contention: a job trained too briefly to measure; give it more --seconds.")
    total, slowest = sum(rates) / alone_rate, min(rates) / alone_rate
    record("contention", f"contention: together {100 * total:.0f}% of alone, slowest {100 * slowest:.0f}%")


def _rate(rate: float | None) -> str:
    return "too short to measure" if rate is None else f"{rate:.1f} img/s"


if __name__ == "__main__":
    main()
