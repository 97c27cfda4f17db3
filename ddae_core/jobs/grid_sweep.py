"""Grid sweeps: one launch that queues every combination of a few settings, each over a number of seeds.

The CLI (`ddae train --grid diffusion.n_T=1000,256,64 --seeds 2`) and the launch forms (a list or a range
typed into a field) both come here: the grid's points are made by engine/spec/grid.py, each point's spec
by the kind's own spec function, and every spec goes through the one door (submit.py) with the sweep's
tag `sweep:NAME`, so the runs table groups them and the same grid gives the same runs from either.
A checkpoint sweep (sweep.py: FID and probe jobs per checkpoint) is another thing; a grid's train runs
can each carry one.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.errors import ConfigError, UserError
from ..engine.spec.fields import infos
from ..engine.spec.grid import Axis, grid_points, parse_axis, point_label, set_config_key
from ..engine.spec.options import MODELS
from ..rundir import SWEEP_TAG_PREFIX
from .specs import train_spec
from .submit import default_train_name, submit

if TYPE_CHECKING:
    from db import Store

GRID_KINDS = ("int", "float", "choice")        # the fields that take a list or a range
_NAME = re.compile(r"[^A-Za-z0-9_.=+-]+")

# A point's spec from the form's (or the CLI's) values with the point's options in, and the point's
# config keys (diffusion.n_T: 256) to set in the config.
Build = Callable[[dict, dict], dict]


def value_kind(kind: str, key: str) -> tuple[str, tuple]:
    """(kind, choices) of a grid key of job `kind`: an option's own, or `auto` for a config key (dotted)."""
    for info in infos(MODELS[kind]):
        if info.name == key:
            if info.kind not in GRID_KINDS:
                raise ConfigError(key, "takes one value, not a grid; a list or a range goes in a number or a choice")
            return info.kind, info.choices
    if "." not in key:
        raise ConfigError(key, f"is not an option of a {kind} job; a config key is written with its section, "
                               "like diffusion.n_T")
    if kind != "train":
        raise ConfigError(key, f"is a config key, which only a train job has; a {kind} job reads its parent's")
    return "auto", ()


def parse_grid(kind: str, texts: Sequence[str]) -> list[Axis]:
    """The axes of repeated `--grid KEY=VALUES` (their product is the grid)."""
    return [parse_axis(text, lambda key: value_kind(kind, key)) for text in texts or ()]


def grid_specs(build: Build, kind: str, values: Mapping, axes: Sequence[Axis], seeds: int | None = None) -> list[dict]:
    """One validated spec per point of the grid (the first axis outermost, seeds innermost), each named
    `<the spec's name> [n_T=256, seed=1]`; with no axes and one seed, the one spec as it is.

    values: the kind's options as the form or the CLI has them (a grid's key among them is overridden);
    seeds: how many seeds, from values' seed on (None or 1: the seed as given).
    """
    options = set(MODELS[kind].model_fields)
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ConfigError("seeds", f"must be a whole number, at least 1 (got {seeds!r})")
    points = grid_points(axes, seeds if seeds and seeds > 1 else None, int(values.get("seed") or 0))
    specs = []
    for point in points:
        spec = build({**values, **{k: v for k, v in point.items() if k in options}},
                     {k: v for k, v in point.items() if k not in options})
        if point:
            spec["name"] = f"{spec['name']} [{point_label(point)}]"
        specs.append(spec)
    return specs


def train_build(config: dict, preset: str | None, evaluate: Callable[[dict], dict | None] | None = None) -> Build:
    """The Build of a train job: `config` (a preset's, with its overrides) with the point's keys set,
    named after the preset as a single run is; evaluate(spec) -> its checkpoint sweep plan, or None."""
    def build(values: dict, edits: dict) -> dict:
        cfg = copy.deepcopy(config)
        for key, value in edits.items():
            set_config_key(cfg, key, value)
        spec = train_spec(config=cfg, **values)
        spec["name"] = spec["name"] or default_train_name(preset, spec["data"])
        plan = evaluate(spec) if evaluate else None
        if plan is not None:
            spec["options"]["sweep"] = plan
        return spec

    return build


def default_sweep_name(axes: Sequence[Axis], seeds: int | None = None) -> str:
    """`n_T-lr-x2-20261206-1142`: the settings it varies, its seeds and when; one word, as a tag wants."""
    keys = "-".join(axis.label for axis in axes) or "seeds"
    count = f"-x{seeds}" if seeds and seeds > 1 else ""
    return f"{keys}{count}-{time.strftime('%Y%m%d-%H%M%S')}"


def sweep_tag(name: str) -> str:
    """The tag the runs of sweep `name` carry: `sweep:NAME` (a space or a comma in the name becomes '-')."""
    word = _NAME.sub("-", str(name).strip()).strip("-")
    if not word:
        raise ConfigError("grid_name", "must hold a letter or a digit, like n_T-ablation")
    return f"{SWEEP_TAG_PREFIX}{word}"


def submit_sweep(workspace: Path, specs: Sequence[dict], name: str, priority: int = 0, gpus: int | None = None,
                 cluster: str | None = None, *, store: Store | None = None) -> list[str]:
    """Queue every spec through the one door, each tagged with the sweep; their run ids in order.

    The specs are validated before (grid_specs), so a refusal here is the disk's or the index's; the runs
    queued before it stay queued, and the sentence says how many.
    """
    tag = sweep_tag(name)
    queued: list[str] = []
    for spec in specs:
        try:
            queued.append(submit(workspace, spec, priority, gpus, cluster, name_chosen=False, store=store,
                                 tags=(tag,)))
        except UserError as exc:
            if not queued:
                raise
            raise UserError(f"{len(queued)} of the sweep's {len(specs)} runs were queued ({tag}), then run "
                            f"{spec.get('name')!r} was refused: {exc}") from None
    return queued
