"""`ddae import-example` (a bundled pretrained run into the workspace) and `ddae pack-example` (the recipe's end)."""

from __future__ import annotations

import argparse

from ..rundir.figures import percent
from .common import add_workspace, workspace_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-example", help="copy a bundled pretrained run (and its probe grid) into the workspace")
    p.add_argument("name", nargs="?", help="the example (omit to list them)")
    add_workspace(p)
    p.set_defaults(func=cmd_import_example)

    p = sub.add_parser("pack-example", help="(maintainers) pack a trained run and its probe as a bundled example")
    p.add_argument("--train", required=True, help="the train run: id, id prefix or name")
    p.add_argument("--probe", required=True, help="a probe run of its last checkpoint")
    p.add_argument("--name", required=True, help="the example's name, e.g. shapes")
    p.add_argument("--title", required=True, help="one line saying what it is")
    add_workspace(p)
    p.set_defaults(func=cmd_pack_example)


def cmd_import_example(args) -> int:
    from ..jobs import examples

    if not args.name:
        for name, info in examples.available().items():
            print(f"{name:<12} {info['title']}{_quality(info)}")
        return 0
    runs = examples.install(workspace_of(args), args.name)
    for run_dir, run in zip(runs, examples.manifest(args.name)["runs"]):
        print(f"{run['kind']:<6} {run_dir.name}  {run.get('name', '')}")
    return 0


def cmd_pack_example(args) -> int:
    from ..jobs import examples

    dest = examples.pack(workspace_of(args), args.train, args.probe, args.name, args.title)
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    print(f"packed {dest} ({size / 2**20:.1f} MiB)")
    return 0


def _quality(info: dict) -> str:
    best, base = info.get("best"), info.get("baselines")
    if not best:
        return ""
    text = f" (best cell {percent(best['accuracy'])} at t={best['timestep']}, {best['layer']}"
    if base:
        text += (f"; raw pixels {percent(base['pixels']['accuracy'])}, "
                 f"random init {percent(base['random_init']['accuracy'])}")
    return text + ")"
