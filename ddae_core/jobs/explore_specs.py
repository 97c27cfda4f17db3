"""Validated specs of the kinds that explore what layers hold: similarity between models, segmentation probes."""

from __future__ import annotations

from pathlib import Path

from ..engine.data.specs import parse_spec
from ..engine.errors import ConfigError, UserError
from ..engine.evaluation.certainty import read_grid
from ..engine.evaluation.grid_axes import parse_layers, parse_timesteps
from ..engine.spec.fields import spec_options
from ..rundir import find_run, read_spec
from .eval_specs import _base, _checkpoint, _parse, parent_config


def best_probe_cell(parent_dir: Path) -> dict | None:
    """{timestep, layer, accuracy} of the best cell of the run's probe grids (its probe children's grid.json)."""
    best = None
    for child in sorted((Path(parent_dir).parent).glob("*-probe-*")):
        try:
            spec = read_spec(child)
        except UserError:
            continue
        if (spec.get("parent") or {}).get("run") != Path(parent_dir).name:
            continue
        cell = (read_grid(child) or {}).get("best")
        if isinstance(cell, dict) and "layer" in cell and (best is None or cell["accuracy"] >= best["accuracy"]):
            best = {"timestep": int(cell["timestep"]), "layer": str(cell["layer"]), "accuracy": float(cell["accuracy"])}
    return best


def similarity_spec(parent_dir: Path, **values) -> dict:
    """CKA and mutual k-NN between the taps of the parent (model A) and a second model (SimilarityOptions)."""
    opts, cfg = _parse("similarity", parent_dir, values)
    workspace = Path(parent_dir).parent.parent
    other = None
    if opts.other:
        if opts.random_init:
            raise ConfigError("random_init", "compares with the network at random init; leave the second run out")
        other_dir = find_run(workspace, opts.other)
        _, other_cfg = parent_config(other_dir)
        if other_cfg.network != cfg.network:
            raise ConfigError("other", f"run {other_dir.name} has another network than run {parent_dir.name}; "
                                       "layer names would not match")
        other = other_dir.name
    elif not opts.random_init and str(opts.other_checkpoint or "latest") == str(opts.checkpoint or "latest"):
        raise ConfigError("other", "is blank and the second checkpoint is the first; name a second run, another "
                                   "checkpoint, or random init")
    best = best_probe_cell(parent_dir)
    timestep = opts.timestep if opts.timestep is not None else (best or {}).get("timestep", cfg.feature_timestep)
    return _base("similarity", parent_dir, opts, {
        **spec_options(opts),
        "other": other,
        "other_checkpoint": str(_checkpoint(opts.other_checkpoint)),
        "timestep": parse_timesteps([timestep], cfg, "timestep")[0],
        "layers": parse_layers(opts.layers, cfg),
        "best_cell": best,
    })


def segmentation_spec(parent_dir: Path, **values) -> dict:
    """A per-pixel probe grid on builtin:shapes, whose generator knows each pixel's class (SegmentationOptions)."""
    opts, cfg = _parse("segmentation", parent_dir, values)
    data = opts.data or read_spec(parent_dir).get("data") or "builtin:shapes"
    try:
        kind = parse_spec(data).kind
    except UserError as exc:
        raise ConfigError("data", str(exc)) from None
    if kind != "shapes":
        raise ConfigError("data", f"must be builtin:shapes, whose generator knows every pixel's shape (got {data}); "
                                  "other datasets have no masks")
    return _base("segmentation", parent_dir, opts, {
        **spec_options(opts),
        "timesteps": parse_timesteps(opts.timesteps, cfg),
        "layers": parse_layers(opts.layers, cfg),
    }) | {"data": data}

