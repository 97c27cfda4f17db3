"""`ddae train`, and the commands beside it that make or show a diffusion model: `ddae sample`, `ddae import`,
`ddae presets`. (`ddae demo` is in demo.py, `ddae sweep` in sweep.py.)"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import yaml

from ..engine import data as datasets
from ..engine.config import load_config, preset_names, preset_path
from ..engine.errors import UserError
from ..engine.spec.options import MODELS
from ..jobs.specs import train_spec
from ..jobs.submit import default_train_name
from ..rundir import SAMPLES_DIR, RunStatus
from .common import add_options, add_queue_options, add_workspace, finish, launch, options_of, run_dir_of, workspace_of
from .sweep import add_sweep_options, train_sweep_plan


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="pre-train a diffusion model (DDPM or EDM)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", help="a preset name (`ddae presets` lists them)")
    src.add_argument("--config", metavar="FILE", help="a config YAML (the official DDAE format is accepted)")
    add_options(p, MODELS["train"])
    p.add_argument("--init-from", metavar="RUN[@STEP]",
                   help="start from this run's weights and EMA (its latest checkpoint, or STEP) with a fresh "
                        "optimizer and lr schedule: train a model further, or on new data")
    p.add_argument("--dry-run", action="store_true", help="validate and print the resolved spec, then stop")
    grid = p.add_argument_group("grid sweep (many runs in one launch; needs --queue)")
    grid.add_argument("--grid", action="append", metavar="KEY=VALUES",
                      help="train every value of a setting: an option or a config key, values as a list or a range "
                           "(diffusion.n_T=1000,256,64; lr=1e-4..1e-3 x4 log; steps=1..4); repeat it for the product")
    grid.add_argument("--seeds", type=int, metavar="N",
                      help="repeat each run with N seeds (--seed, --seed + 1, ...)")
    grid.add_argument("--grid-name", metavar="NAME",
                      help="the sweep's name; its runs are tagged sweep:NAME (default: its keys and the time)")
    sweep = p.add_argument_group("checkpoint sweep")
    sweep.add_argument("--sweep", nargs="*", metavar="all|every K",
                       help="queue FID and probe jobs for each new checkpoint (all) or those at multiples of K steps")
    add_sweep_options(sweep, "sweep-")
    add_workspace(p)
    add_queue_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="draw samples from a trained run into a PNG grid")
    p.add_argument("--run", required=True, help="run id, id prefix or name")
    add_options(p, MODELS["sample"])
    p.add_argument("--out", metavar="FILE", help="also copy the grid to FILE")
    add_workspace(p)
    add_queue_options(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("import", help="import a trained model as a run: an official DDAE checkpoint, a diffusers "
                                      "DDPM folder, an NVlabs EDM pickle or a DiT checkpoint with its VAE")
    p.add_argument("checkpoint", help="model_<epoch>.pth, a diffusers model folder (or hf:OWNER/NAME, fetched into "
                                      "the workspace's data/models/), or an EDM network .pkl")
    p.add_argument("--format", choices=("official", "diffusers", "edm", "dit"),
                   help="the source's format (default: detected; a folder is diffusers, a .pkl EDM, DiT-*.pt DiT)")
    p.add_argument("--config", metavar="FILE",
                   help="the official YAML config it was trained with (official checkpoints; for DiT, fields "
                        "over the config its weights imply, e.g. network: {num_heads: 4})")
    p.add_argument("--vae", metavar="DIR", help="DiT only: the diffusers AutoencoderKL folder of its latents (the "
                                                "official: stabilityai/sd-vae-ft-mse), or hf:OWNER/NAME, fetched "
                                                "into the workspace's data/models/ unless already there")
    p.add_argument("--name")
    p.add_argument("--data", metavar="SPEC", help="dataset its evaluations use (default: the config's)")
    add_workspace(p)
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("presets", help="list the model presets")
    p.add_argument("--show", metavar="NAME", help="print one preset's YAML")
    p.set_defaults(func=cmd_presets)


def cmd_train(args) -> int:
    if args.grid or args.seeds not in (None, 1):
        return _train_grid(args)
    spec = train_spec(config=preset_path(args.preset) if args.preset else args.config,
                      **options_of(args, MODELS["train"]))
    if args.name is None:
        spec["name"] = default_train_name(args.preset, spec["data"])
    if args.init_from:
        _init_from(args, spec)
    plan = train_sweep_plan(args, spec)
    if plan is not None:
        spec["options"]["sweep"] = plan
    if args.dry_run:
        yaml.safe_dump(spec, sys.stdout, sort_keys=False)
        return 0
    run_dir, status = launch(args, spec, name_chosen=args.name is not None)
    return finish(run_dir, status)


def _train_grid(args) -> int:
    """--grid/--seeds: every point's spec, checked before any is queued, then queued as one sweep."""
    from db import Store

    from ..jobs.cluster import check_placement
    from ..jobs.grid_sweep import default_sweep_name, grid_specs, parse_grid, submit_sweep, sweep_tag, train_build
    from .common import check_priority_option, gpus_option

    axes = parse_grid("train", args.grid)
    config = load_config(preset_path(args.preset) if args.preset else args.config)
    build = train_build(config, args.preset, evaluate=lambda spec: train_sweep_plan(args, spec))
    specs = grid_specs(build, "train", options_of(args, MODELS["train"]), axes, args.seeds)
    for spec in specs:
        if args.init_from:
            _init_from(args, spec)
    if args.dry_run:
        yaml.safe_dump_all(specs, sys.stdout, sort_keys=False)
        return 0
    if not args.queue:
        raise UserError(f"A grid of {len(specs)} runs needs --queue: its runs wait in the queue, and `ddae queue "
                        "serve` or the app runs them.")
    workspace = workspace_of(args)
    check_priority_option(args.priority)
    cluster = check_placement(workspace, args.cluster)
    name = args.grid_name or default_sweep_name(axes, args.seeds)
    with Store.open(workspace) as store:
        run_ids = submit_sweep(workspace, specs, name, args.priority, gpus_option(args), cluster, store=store)
    where = f" for cluster {cluster}" if cluster else ""
    print(f"queued sweep {name} ({len(run_ids)} runs{where}, tag {sweep_tag(name)}); `ddae queue serve` or the app "
          "runs them")
    for run_id, spec in zip(run_ids, specs):
        print(f"  {run_id}  {spec['name']}")
    return 0


def _init_from(args, spec: dict) -> None:
    """--init-from RUN[@STEP]: the source run's checkpoint becomes the spec's parent, checked now (same
    network, a checkpoint that exists) so that a mismatch is one sentence before any run is made."""
    from ..rundir import read_spec, resolve_checkpoint

    ref, _, which = args.init_from.rpartition("@") if "@" in args.init_from else (args.init_from, "", "latest")
    source = run_dir_of(args, ref)
    source_spec = read_spec(source)
    if source_spec.get("kind") not in ("train", "import"):
        raise UserError(f"--init-from {ref}: run {source.name} is a {source_spec.get('kind')} run, which holds no "
                        "diffusion model; name a train run.")
    if (source_spec.get("config") or {}).get("network") != spec["config"].get("network"):
        raise UserError(f"--init-from {ref}: run {source.name} has another network than this config; use the "
                        "same preset or config it was trained with.")
    step, _ = resolve_checkpoint(source, which or "latest")
    spec["parent"] = {"run": source.name, "checkpoint": step}
    spec["options"]["init_from"] = True


def cmd_sample(args) -> int:
    from ..jobs.eval_specs import sample_spec

    spec = sample_spec(run_dir_of(args), **options_of(args, MODELS["sample"]))
    out = _check_out(args.out) if args.out else None
    run_dir, status = launch(args, spec, name_chosen=args.name is not None)    # "sample of X" is numbered
    if status == RunStatus.DONE:
        grid = run_dir / SAMPLES_DIR / "grid.png"
        if out is not None:
            try:
                shutil.copyfile(grid, out)
            except OSError as exc:
                raise UserError(f"The samples are in {grid}, but copying them to {out} failed "
                                f"({exc.strerror or exc}); copy the file by hand.") from None
            grid = out
        print(f"samples: {grid}")
    return finish(run_dir, status)


def _check_out(text: str) -> Path:
    """--out as a file path whose folder exists and can be written, checked before any sampling."""
    out = Path(text).expanduser()
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'samples.png'}.")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: the folder {out.parent} does not exist; create it or choose another.")
    if not os.access(out.parent, os.W_OK):
        raise UserError(f"--out {out}: the folder {out.parent} is not writable; choose another.")
    return out


def cmd_import(args) -> int:
    from ..engine.importers.hub import fetch, is_hub_source
    from ..jobs.eval_specs import import_spec

    source = fetch(args.checkpoint, workspace_of(args)) if is_hub_source(args.checkpoint) else args.checkpoint
    vae = fetch(args.vae, workspace_of(args)) if args.vae and is_hub_source(args.vae) else args.vae
    spec = import_spec(source, args.config, name=args.name, data=args.data, fmt=args.format, vae=vae)
    run_dir, status = launch(args, spec, quiet=True)
    if status == RunStatus.DONE:
        print(f"imported as run {run_dir.name}")
    return finish(run_dir, status)


def cmd_presets(args) -> int:
    if args.show:
        print(preset_path(args.show).read_text(), end="")
        return 0
    for name in preset_names():
        cfg = load_config(name)
        studio = cfg.get("studio") or {}
        net = cfg.get("network", {})
        print(f"{name:<24} {cfg.get('model_type', '?'):<5} ch{net.get('n_channels')} "
              f"{studio.get('description', '')}")
    print("\ndatasets:")
    for example, text in datasets.describe_specs():
        print(f"  {example:<28} {text}")
    return 0
