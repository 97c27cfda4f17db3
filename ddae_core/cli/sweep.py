"""`ddae sweep` (FID and probe accuracy of every checkpoint of a training run, queued) and `ddae train --sweep`'s
options."""

from __future__ import annotations

import argparse

from ..engine.spec.options import MODELS, SweepOptions
from .common import add_device, add_options, add_workspace, check_priority_option, run_dir_of, workspace_of

# The FID job's options a sweep passes on to its FID jobs (as --sampler ... or --sweep-sampler ...).
SWEEP_FID = ("sampler", "steps", "batch_size", "dims")


def _fid_options(p: argparse.ArgumentParser, pre: str = "") -> None:
    """The FID model's sampler and Inception options for a sweep; `pre` ('sweep-') where they sit beside
    `ddae train`'s own, so their dests are fid_sampler, fid_steps, ... (and inception)."""
    add_options(p, MODELS["fid"], SWEEP_FID, prefix=pre, dest_prefix="fid_")
    add_options(p, MODELS["fid"], ("inception",))


def _sweep_fid(args) -> dict:
    """The values of _fid_options, by the FID model's field names (what sweep_plan takes)."""
    return {**{name: getattr(args, f"fid_{name}") for name in SWEEP_FID}, "inception": args.inception}


def add_sweep_options(p: argparse.ArgumentParser, pre: str = "") -> None:
    """--fid-n, --probe and the FID options (each --sweep-... for `ddae train`)."""
    add_options(p, SweepOptions, prefix=pre)
    _fid_options(p, pre)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="queue FID and probe jobs for each checkpoint of a training run")
    p.add_argument("--run", required=True, help="the training run: id, id prefix or name")
    p.add_argument("--checkpoints", nargs="+", default=["all"], metavar="all|every K",
                   help="all checkpoints (default), or every K: those at multiples of K steps")
    add_sweep_options(p)
    p.add_argument("--data", metavar="SPEC", help="dataset (default: the run's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--priority", type=int, default=0, help="queue priority of the jobs, higher runs first")
    p.add_argument("--show", action="store_true", help="print the run's sweep results so far instead of queueing")
    add_device(p)
    add_workspace(p)
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args) -> int:
    from db import Store

    from ..jobs.eval_specs import parent_config
    from ..jobs.sweep import new_sweep_id, queue_children, sweep_plan, sweep_steps

    workspace = workspace_of(args)
    parent_dir = run_dir_of(args)
    if args.show:
        from ..jobs.sweep import sweep_table

        print(sweep_table(parent_dir))
        return 0
    _, model_cfg = parent_config(parent_dir)
    plan = sweep_plan(model_cfg, workspace, checkpoints=args.checkpoints, fid_n=args.fid_n, probe=args.probe,
                      **_sweep_fid(args), data=args.data, device=args.device, seed=args.seed,
                      priority=check_priority_option(args.priority))
    steps = sweep_steps(parent_dir, plan)
    with Store.open(workspace) as store:
        made = queue_children(parent_dir, steps, plan, new_sweep_id(parent_dir), store=store)
    what = " and ".join(w for w, on in (("FID", plan["fid"]), ("probe", plan["probe"])) if on)
    print(f"queued {len(made)} jobs ({what}) for {len(steps)} checkpoints of {parent_dir.name} "
          f"(steps {', '.join(map(str, steps))}); `ddae queue serve` or the app runs them")
    for run_dir in made:
        print(f"  {run_dir.name}")
    return 0


def train_sweep_plan(args, spec: dict) -> dict | None:
    """`ddae train --sweep ...`: the validated plan for the train spec's options, or None without --sweep."""
    if args.sweep is None:
        return None
    from ..engine.config import parse_model_config
    from ..jobs.sweep import sweep_plan

    return sweep_plan(parse_model_config(spec["config"]), workspace_of(args), checkpoints=args.sweep or "all",
                      fid_n=args.fid_n, probe=args.probe, **_sweep_fid(args), device=spec["device"]["request"],
                      seed=spec["options"]["seed"])       # a grid's run: its own seed
