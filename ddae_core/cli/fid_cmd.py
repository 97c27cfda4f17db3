"""`ddae fid` (FID per checkpoint) and `ddae sweep` (FID and probe accuracy of every checkpoint, queued)."""

from __future__ import annotations

import argparse

from .common import add_device, add_workspace, check_priority_option, number, run_dir_of, workspace_of
from .evaluate import _eval_parser


def _fid_options(p: argparse.ArgumentParser, pre: str = "") -> None:
    """The sampler and Inception options; `pre` ('sweep-') where they sit beside `ddae train`'s own."""
    p.add_argument(f"--{pre}sampler", choices=["ddim", "ddpm", "heun"], dest="fid_sampler",
                   help="default: ddim for DDPM, heun for EDM")
    p.add_argument(f"--{pre}steps", type=number, dest="fid_steps",
                   help="sampler steps (default 100 for DDIM, 18 for Heun, as the official FIDs)")
    p.add_argument(f"--{pre}batch", type=number, default=250, dest="fid_batch",
                   help="images sampled and scored at once (default 250)")
    p.add_argument(f"--{pre}dims", type=int, default=2048, dest="fid_dims", choices=[64, 192, 768, 2048],
                   help="Inception feature size (default 2048, the standard FID; the others are for quick checks)")
    p.add_argument("--inception", metavar="PATH",
                   help="the FID Inception weights pt_inception-2015-12-05-6726825d.pth (default: $DDAE_INCEPTION, "
                        "WORKSPACE/data/fid/, or torch's hub cache)")


def add_sweep_options(p: argparse.ArgumentParser, pre: str = "") -> None:
    """--fid-n, --probe and the FID options (each --sweep-... for `ddae train`)."""
    p.add_argument(f"--{pre}fid-n", type=number, default=10000, dest="fid_n",
                   help="FID samples per checkpoint (default 10000; 0: no FID)")
    p.add_argument(f"--{pre}probe", metavar="T,LAYER|grid|none", dest="probe",
                   help="probe per checkpoint, fast protocol: one cell T,LAYER like 11,out_6 (default: the config's), "
                        "grid (the paper's grid, its best cell), or none")
    _fid_options(p, pre)


def register(sub: argparse._SubParsersAction) -> None:
    p = _eval_parser(sub, "fid", "FID of a run's EMA samples against its training set, per checkpoint",
                     checkpoint=False)
    p.add_argument("--checkpoint", default="latest", help="latest, a step, or all (default latest)")
    p.add_argument("--n", type=number, default=10000, help="samples per checkpoint (default 10000; the official 50000)")
    _fid_options(p)
    p.set_defaults(func=cmd_fid)

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


def cmd_fid(args) -> int:
    from ..jobs.eval_specs import fid_spec
    from .evaluate import _run

    return _run(args, fid_spec(run_dir_of(args), checkpoint=args.checkpoint, n=args.n, sampler=args.fid_sampler,
                               steps=args.fid_steps, batch_size=args.fid_batch, dims=args.fid_dims,
                               inception=args.inception, data=args.data, device=args.device, seed=args.seed,
                               name=args.name))


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
                      sampler=args.fid_sampler, steps=args.fid_steps, batch_size=args.fid_batch, dims=args.fid_dims,
                      inception=args.inception, data=args.data, device=args.device, seed=args.seed,
                      priority=check_priority_option(args.priority))
    steps = sweep_steps(parent_dir, plan)
    made = queue_children(parent_dir, steps, plan, new_sweep_id(parent_dir))
    store = Store.open(workspace)
    try:
        for run_dir in made:
            store.register_run(run_dir)          # a folder with a queue block is enqueued as it is registered
    finally:
        store.close()
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
                      fid_n=args.fid_n, probe=args.probe, sampler=args.fid_sampler, steps=args.fid_steps,
                      batch_size=args.fid_batch, dims=args.fid_dims, inception=args.inception,
                      device=spec["device"]["request"], seed=args.seed)
