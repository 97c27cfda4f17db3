"""`ddae probe`, `ddae align-uniform`, `ddae noisy-classifier`, `ddae finetune`, `ddae fid`, `ddae classify`."""

from __future__ import annotations

import argparse
import json
import sys

from .common import add_device, add_options, add_queue_options, add_workspace, finish, launch, options_of, run_dir_of


def _eval_parser(sub, name: str, help_text: str, model) -> argparse.ArgumentParser:
    """A subcommand for an evaluation job: --run, then every option of the kind's model."""
    p = sub.add_parser(name, help=help_text)
    p.add_argument("--run", required=True, help="the run to evaluate: id, id prefix or name")
    add_options(p, model)
    add_workspace(p)
    add_queue_options(p)
    return p


# The evaluation subcommands: (command, help, the spec function's name in jobs.eval_specs).
EVALUATIONS = (
    ("probe", "linear probes over a layer x noise-level grid", "probe_spec"),
    ("align-uniform", "alignment and uniformity of layers over checkpoints", "align_spec"),
    ("noisy-classifier", "a noise-conditional classifier, accuracy per noise level", "noisy_spec"),
    ("finetune", "fine-tune the network truncated after a layer, on clean images", "finetune_spec"),
)


def register(sub: argparse._SubParsersAction) -> None:
    from ..engine.spec.options import MODELS

    for kind, help_text, spec_function in EVALUATIONS:
        p = _eval_parser(sub, kind, help_text, MODELS[kind])
        p.set_defaults(func=cmd_evaluate, kind=kind, spec_function=spec_function)

    p = sub.add_parser("classify", help="top-5 classes of image files from a run's trained head")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files or folders (a folder's class subfolders too: their names are the true class)")
    p.add_argument("--run", required=True, help="a probe or noisy-classifier run, or the train run they evaluated")
    p.add_argument("--timestep", type=int, help="noise level (default: the head's)")
    p.add_argument("--head", choices=["probe", "noisy", "aggregate"], default="probe",
                   help="probe (a cell's linear head), noisy, or aggregate (an aggregate probe's head over all cells)")
    p.add_argument("--layer", help="probe cell layer (default: the best cell's)")
    p.add_argument("--save", metavar="DIR", help="also write the noisy input and the denoised estimate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_device(p)
    add_workspace(p)
    p.set_defaults(func=cmd_classify)

    p = _eval_parser(sub, "fid", "FID of a run's EMA samples against its training set, per checkpoint", MODELS["fid"])
    p.set_defaults(func=cmd_fid)


def _run(args, spec) -> int:
    # A made-up name ("probe of X") gets a number when taken, so a second evaluation of one run is not refused.
    run_dir, status = launch(args, spec, name_chosen=args.name is not None)
    return finish(run_dir, status)


def cmd_evaluate(args) -> int:
    """Run (or queue) the evaluation `args.kind` with the options its model declares."""
    from ..engine.spec.options import MODELS
    from ..jobs import eval_specs

    spec_function = getattr(eval_specs, args.spec_function)
    return _run(args, spec_function(run_dir_of(args), **options_of(args, MODELS[args.kind])))


def cmd_fid(args) -> int:
    from ..engine.spec.options import MODELS
    from ..jobs.eval_specs import fid_spec

    return _run(args, fid_spec(run_dir_of(args), **options_of(args, MODELS["fid"])))


def cmd_classify(args) -> int:
    from ..engine.evaluation.classify import Classifier, accuracy_line, classify_files, expand_images

    classifier = Classifier.from_run(run_dir_of(args), head=args.head, layer=args.layer, timestep=args.timestep,
                                     device=args.device)
    results = classify_files(classifier, expand_images(args.images), save_dir=args.save, seed=args.seed)
    note, tally_line = classifier.range_note(), accuracy_line(results)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=1))
        for line in (note, tally_line):          # JSON stays parseable on stdout
            if line:
                print(f"note: {line}", file=sys.stderr)
    else:
        print(f"head: {classifier.describe()}")
        if note:
            print(f"warning: {note}")
        for r in results:
            print(r.as_text())
        if tally_line:
            print(tally_line)
    return 0 if any(r.ok for r in results) else 2
