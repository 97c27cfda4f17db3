"""`ddae probe`, `ddae align-uniform`, `ddae noisy-classifier`, `ddae finetune`, `ddae classify`."""

from __future__ import annotations

import argparse
import json

from .common import add_device, add_queue_options, add_workspace, launch, run_dir_of


def _eval_parser(sub, name: str, help_text: str, checkpoint: bool = True) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text)
    p.add_argument("--run", required=True, help="the run to evaluate: id, id prefix or name")
    if checkpoint:
        p.add_argument("--checkpoint", default="latest", help="latest or a step (default latest)")
    p.add_argument("--data", metavar="SPEC", help="dataset (default: the run's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", help="a name for this evaluation run")
    add_device(p)
    add_workspace(p)
    add_queue_options(p)
    return p


def _limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-limit", type=int, help="use only this many training images (quick checks)")
    p.add_argument("--test-limit", type=int, help="use only this many test images")


def register(sub: argparse._SubParsersAction) -> None:
    p = _eval_parser(sub, "probe", "linear probes over a layer x noise-level grid")
    p.add_argument("--timesteps", help="DDPM steps or EDM sigma indices, e.g. 1,11,21 (default: the paper's grid)")
    p.add_argument("--layers", default="all", help="all (decoder taps out_k), every (with enc_k and mid), "
                                                   "or a list like out_6,out_7")
    p.add_argument("--protocol", choices=["fast", "official", "standardized"], default="fast",
                   help="fast (official optimiser on cached features; default), official (the official code's "
                        "probe), standardized (fast on zero-mean, unit-variance features; MAE-style, not official)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--views", type=int, default=1, help="fast protocol: augmented views cached per timestep")
    p.add_argument("--cache-memory-mb", type=int, help="fast protocol: feature cache budget before spilling to disk")
    p.add_argument("--standardize", action="store_true", help="the same as --protocol standardized")
    p.add_argument("--no-baselines", dest="baselines", action="store_false",
                   help="skip the raw-pixel and random-init baselines (each grid trains them by default)")
    _limits(p)
    p.set_defaults(func=cmd_probe)

    p = _eval_parser(sub, "align-uniform", "alignment and uniformity of layers over checkpoints", checkpoint=False)
    p.add_argument("--checkpoints", default="all", help="all, latest, or steps like 1000,2000")
    p.add_argument("--layers", help="layers, e.g. out_6,out_7 (default: the config's probe layer)")
    p.add_argument("--timestep", type=int, help="noise level (default: the config's, 11 or 4)")
    p.add_argument("--limit", type=int, help="use only this many training images")
    p.set_defaults(func=cmd_align)

    p = _eval_parser(sub, "noisy-classifier", "a noise-conditional classifier, accuracy per noise level")
    p.add_argument("--layer", help="feature layer (default: the config's probe layer)")
    p.add_argument("--baseline", choices=["wrn"], help="train the noise-conditional WRN from scratch instead")
    p.add_argument("--epochs", type=int, help="default: 15 for the head, 200 for --baseline wrn (the official)")
    p.add_argument("--lr", type=float)
    p.add_argument("--width", type=int, default=10, help="WRN widen factor (default 10)")
    p.add_argument("--depth", type=int, default=28, help="WRN depth (default 28)")
    _limits(p)
    p.set_defaults(func=cmd_noisy)

    p = _eval_parser(sub, "finetune", "fine-tune the network truncated after a layer, on clean images")
    p.add_argument("--layer", help="truncate after this tap (default: the config's probe layer)")
    p.add_argument("--timestep", type=int, help="fixed time input (default: the config's, 11 or 4)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--lr", type=float)
    p.add_argument("--scratch", action="store_true", help="same truncated network from random weights")
    _limits(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("classify", help="top-5 classes of image files from a run's trained head")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--run", required=True, help="a probe or noisy-classifier run, or the train run they evaluated")
    p.add_argument("--timestep", type=int, help="noise level (default: the head's)")
    p.add_argument("--head", choices=["probe", "noisy"], default="probe")
    p.add_argument("--layer", help="probe cell layer (default: the best cell's)")
    p.add_argument("--save", metavar="DIR", help="also write the noisy input and the denoised estimate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_device(p)
    add_workspace(p)
    p.set_defaults(func=cmd_classify)


def _run(args, spec) -> int:
    from .pretrain import _finish

    run_dir, status = launch(args, spec)
    return _finish(run_dir, status)


def cmd_probe(args) -> int:
    from ..jobs.eval_specs import probe_spec

    return _run(args, probe_spec(run_dir_of(args), checkpoint=args.checkpoint, timesteps=args.timesteps,
                                 layers=args.layers, data=args.data, protocol=args.protocol, epochs=args.epochs,
                                 views=args.views, device=args.device, seed=args.seed, name=args.name,
                                 train_limit=args.train_limit, test_limit=args.test_limit,
                                 cache_memory_mb=args.cache_memory_mb, standardize=args.standardize,
                                 baselines=args.baselines))


def cmd_align(args) -> int:
    from ..jobs.eval_specs import align_spec

    return _run(args, align_spec(run_dir_of(args), checkpoints=args.checkpoints, layers=args.layers,
                                 timestep=args.timestep, data=args.data, device=args.device, seed=args.seed,
                                 limit=args.limit, name=args.name))


def cmd_noisy(args) -> int:
    from ..jobs.eval_specs import noisy_spec

    return _run(args, noisy_spec(run_dir_of(args), checkpoint=args.checkpoint, layer=args.layer,
                                 baseline=args.baseline, epochs=args.epochs, lr=args.lr, width=args.width,
                                 depth=args.depth, data=args.data, device=args.device, seed=args.seed,
                                 train_limit=args.train_limit, test_limit=args.test_limit, name=args.name))


def cmd_finetune(args) -> int:
    from ..jobs.eval_specs import finetune_spec

    return _run(args, finetune_spec(run_dir_of(args), layer=args.layer, timestep=args.timestep,
                                    checkpoint=args.checkpoint, epochs=args.epochs, lr=args.lr, scratch=args.scratch,
                                    data=args.data, device=args.device, seed=args.seed, name=args.name,
                                    train_limit=args.train_limit, test_limit=args.test_limit))


def cmd_classify(args) -> int:
    from ..engine.evaluation.classify import Classifier, classify_files

    classifier = Classifier.from_run(run_dir_of(args), head=args.head, layer=args.layer, timestep=args.timestep,
                                     device=args.device)
    results = classify_files(classifier, args.images, save_dir=args.save, seed=args.seed)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=1))
    else:
        print(f"head: {classifier.describe()}")
        for r in results:
            print(r.as_text())
    return 0 if any(r.ok for r in results) else 2
