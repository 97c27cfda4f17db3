"""Launch like this: a run's spec as the texts of its kind's launch form, so that queueing the form
unchanged builds the same spec (a train run's config as the closest preset plus YAML overrides)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from ddae_core.engine.config import load_config, preset_names
from ddae_core.engine.errors import UserError

from .kinds import KIND, SWEEP_FIELDS

FORM_ONLY = ("name", "device", "gpus", "data", "minutes", "parent", "checkpoint")


def config_difference(base: Mapping, config: Mapping) -> dict:
    """The keys of `config` whose values differ from `base`'s (sections compared key by key)."""
    out: dict = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            inner = config_difference(base[key], value)
            if inner:
                out[key] = inner
        elif key not in base or base[key] != value:
            out[key] = value
    return out


def closest_preset(config: Mapping) -> tuple[str, dict]:
    """(the preset whose config differs from `config` in the fewest keys, that difference)."""
    best: tuple[int, str, dict] | None = None
    for name in preset_names():
        try:
            diff = config_difference(load_config(name), config)
        except UserError:
            continue
        size = len(yaml.safe_dump(diff)) if diff else 0
        if best is None or size < best[0]:
            best = (size, name, diff)
    if best is None:
        raise UserError("No preset could be read to launch this run again; reinstall DDAE Studio's presets.")
    return best[1], best[2]


def form_values(spec: Mapping) -> dict[str, Any]:
    """The launch form's values (by field name) that build `spec` again; a blank name (made up, numbered)."""
    kind = KIND[str(spec["kind"])]
    options = dict(spec.get("options") or {})
    fields = {f.name: f for _, section in kind.sections for f in section}
    device = spec.get("device") or {}
    values: dict[str, Any] = {"name": "", "device": device.get("request", "auto"), "data": spec.get("data") or ""}
    if "gpus" in fields:
        values["gpus"] = int(device.get("gpus") or 0)
    for name in fields:
        if name in options and name not in FORM_ONLY and options[name] is not None:
            value = options[name]
            values[name] = ",".join(map(str, value)) if isinstance(value, list) else value
    if kind.name == "train":
        values.update(_train_values(spec, options))
    else:
        parent = spec.get("parent") or {}
        values["parent"] = parent.get("run")
        values["checkpoint"] = parent.get("checkpoint", "latest")
    return {name: value for name, value in values.items() if name in fields}


def _train_values(spec: Mapping, options: dict) -> dict[str, Any]:
    preset, overrides = closest_preset(spec["config"])
    values: dict[str, Any] = {"config": preset, "overrides": overrides or ""}
    if options.get("steps") is not None:        # the spec's steps were given, or the preset's: epochs stay blank
        values["epochs"] = None
    else:
        values["steps"] = None
    if options.get("time_limit_s"):
        values["minutes"] = options["time_limit_s"] / 60
    plan = options.get("sweep")
    values["sweep"] = bool(plan)
    if plan:
        every = plan["checkpoints"]
        values[SWEEP_FIELDS["checkpoints"]] = "all" if every == "all" else f"every {every['every']}"
        values[SWEEP_FIELDS["fid_n"]] = (plan.get("fid") or {}).get("n", 0)
        probe = plan.get("probe")
        values[SWEEP_FIELDS["probe"]] = "none" if probe is None else \
            f"{probe['timesteps'][0]},{probe['layers'][0]}" if len(probe["timesteps"]) == len(probe["layers"]) == 1 \
            else "grid"
    return values
