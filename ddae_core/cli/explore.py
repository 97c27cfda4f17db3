"""`ddae similarity` (CKA and mutual k-NN between two models' taps) and `ddae segment` (a per-pixel probe grid)."""

from __future__ import annotations

import argparse

from .common import add_options, add_queue_options, add_workspace, finish, launch, options_of, run_dir_of


def register(sub: argparse._SubParsersAction) -> None:
    from ..engine.spec.options import MODELS

    p = sub.add_parser("similarity", help="linear CKA and mutual k-NN between every tap of two models")
    p.add_argument("run", metavar="RUN_A", help="model A: a train or import run (id, id prefix or name)")
    p.add_argument("other", metavar="RUN_B", nargs="?",
                   help="model B: another run (blank: RUN_A at --other-checkpoint, or --random-init)")
    add_options(p, MODELS["similarity"])
    add_workspace(p)
    add_queue_options(p)
    p.set_defaults(func=cmd_similarity)

    p = sub.add_parser("segment", help="a per-pixel linear probe grid (mIoU) over layers x noise, on builtin:shapes")
    p.add_argument("run", metavar="RUN", help="the model: a train or import run (id, id prefix or name)")
    add_options(p, MODELS["segmentation"])
    add_workspace(p)
    add_queue_options(p)
    p.set_defaults(func=cmd_segment)


def cmd_similarity(args) -> int:
    from ..engine.spec.options import MODELS
    from ..jobs.explore_specs import similarity_spec

    spec = similarity_spec(run_dir_of(args), other=args.other, **options_of(args, MODELS["similarity"]))
    run_dir, status = launch(args, spec, name_chosen=args.name is not None)    # a made-up name is numbered
    code = finish(run_dir, status)
    if status == "done":
        print(similarity_summary(run_dir))
    return code


def cmd_segment(args) -> int:
    from ..engine.spec.options import MODELS
    from ..jobs.explore_specs import segmentation_spec

    spec = segmentation_spec(run_dir_of(args), **options_of(args, MODELS["segmentation"]))
    run_dir, status = launch(args, spec, name_chosen=args.name is not None)
    return finish(run_dir, status)


def similarity_summary(run_dir) -> str:
    """The CKA table (A's layers as rows) and where B holds A's best cell, as text."""
    from ..engine.evaluation.similarity import best_match, read_similarity

    result = read_similarity(run_dir)
    if result is None:
        return ""
    width = max(len(name) for name in result["layers_b"] + ["CKA"]) + 1
    lines = [f"CKA at t={result['timestep']} on {result['images']} images: A = {result['a']['name']}, "
             f"B = {result['b']['name']}",
             "A \\ B".ljust(width) + "".join(name.rjust(width) for name in result["layers_b"])]
    for name, row in zip(result["layers_a"], result["cka"]):
        lines.append(name.ljust(width) + "".join(f"{v:.2f}".rjust(width) for v in row))
    cell = result.get("best_cell")
    if cell and (match := best_match(result, cell["layer"])) is not None:
        lines.append(f"A's best cell {cell['layer']} (t={cell['timestep']}) is held most by B's {match[0]} "
                     f"(CKA {match[1]:.2f})")
    return "\n".join(lines)
