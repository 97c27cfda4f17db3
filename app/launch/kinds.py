"""The job kinds the Launch view offers: their fields, and how their values become a spec.

A kind's options are its model's fields (ddae_core.engine.spec.options): each form field, its label,
tooltip, default and placeholder come from there, and the form's values go to the kind's spec
function as they are. Here is only the layout (which section shows which option) and the few
fields of the form itself (preset and overrides, parent run, priority, the sweep group, quick).
An option the layout does not place still appears, in "More options".
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ddae_core.engine.config import load_config, parse_model_config
from ddae_core.engine.errors import ConfigError, UserError
from ddae_core.engine.spec import options as job_options
from ddae_core.engine.spec.fields import OptionInfo, infos, parse_options
from ddae_core.engine.spec.options import SweepOptions
from ddae_core.jobs.eval_specs import align_spec, fid_spec, finetune_spec, noisy_spec, probe_spec, sample_spec
from ddae_core.jobs.explore_specs import segmentation_spec, similarity_spec
from ddae_core.jobs.grid_sweep import Build, train_build
from ddae_core.jobs.specs import train_spec
from ddae_core.jobs.submit import default_train_name
from ddae_core.jobs.sweep import sweep_plan

from .fields import Field, parse_number

# The probe form's "quick" box: fewer images to extract features from, the slow part on a CPU.
QUICK = {"train_limit": 2000, "test_limit": 500}


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - no torch build with CUDA: the CPU it is
        return False


def gpus_for(device: str, requested: int | None) -> int:
    """GPUs a job asks the scheduler for: none on the CPU, and none for `auto` on a machine without one."""
    if device == "cpu" or (device == "auto" and not cuda_available()):
        return 0
    return max(1, int(requested or 1))


def deep_merge(base: dict, extra: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merged_config(preset: str, overrides: str | None) -> dict:
    """The preset with the form's YAML overrides merged in (ConfigError at `overrides` if unreadable)."""
    cfg = load_config(preset)
    if not overrides:
        return cfg
    try:
        extra = yaml.safe_load(overrides)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError("overrides", f"is not valid YAML{where}; write it as `key: value` lines") from None
    if extra is None:
        return cfg
    if not isinstance(extra, dict):
        raise ConfigError("overrides", "must be `key: value` lines (a YAML mapping), like `batch_size: 32`")
    return deep_merge(cfg, extra)


# Fields of the form itself, not options of a job.
PRIORITY = Field("priority", "Priority", "int", 0, tip="Higher runs first; equal priorities run in order")
PARENT = Field("parent", "Parent run", "parent", tip="The trained model to evaluate (a train or import run)")
MORE = "More options"


def option_field(option: OptionInfo) -> Field:
    """The form field of one job option, as its model declares it."""
    shown = option.kind in ("choice", "check") or option.filled     # else the default is the placeholder
    return Field(option.name, option.label, option.kind, option.default if shown else None, option.choices,
                 option.tip, option.hint)


def _resources(gpus: bool = False) -> tuple[str, list]:
    return "Resources", ["device", *(["gpus"] if gpus else []), PRIORITY]


# A grid sweep: any number or choice field also takes a list or a range (1000, 256, 64; 1e-4..1e-3 x4 log).
SEEDS = Field("seeds", "Seeds", "int", placeholder="1",
              tip="Queue each run with this many seeds (the seed above, then one more each); with a list or a range "
                  "in a number field, every combination is queued as one sweep")
CONFIG_GRID = Field("grid", "Config grid", "lines",
                    placeholder="diffusion.n_T=1000,256,64\n(one KEY=VALUES a line; every combination is queued)",
                    tip="Keys of the preset with several values, as `ddae train --grid`: each line an axis of the grid")
GRID_NAME = Field("grid_name", "Sweep name", placeholder="automatic: the keys it varies and the time",
                  tip="The sweep's runs are tagged sweep:NAME, and the runs table groups them by it")
GRID_FIELDS = ("seeds", "grid", "grid_name")


def _grid(config_keys: bool = False) -> tuple[str, list]:
    return "Grid sweep", [SEEDS, *([CONFIG_GRID] if config_keys else []), GRID_NAME]


@dataclass(frozen=True)
class KindForm:
    """The Launch form of one job kind (the kind itself is ddae_core.rundir.JobKind).

    `layout`: (section, [option name or form-only Field, ...]) pairs.
    """

    name: str
    title: str
    about: str
    layout: tuple[tuple[str, list], ...]
    build: Callable[[dict, Path], dict]
    user_error_field: str = "parent"     # where a field-less UserError is shown

    @property
    def options(self) -> type:
        """The kind's options model, looked up when a form is built (a test may add a field to it)."""
        return job_options.MODELS[self.name]

    @property
    def sections(self) -> tuple[tuple[str, list[Field]], ...]:
        """The layout with each option name made its Field; the options it does not place go to MORE,
        before the last section (Resources)."""
        fields = {o.name: option_field(o) for o in infos(self.options) if o.gui}
        placed = {entry for _, entries in self.layout for entry in entries if isinstance(entry, str)}
        sections = [(title, [fields[e] if isinstance(e, str) else e for e in entries
                             if not isinstance(e, str) or e in fields])      # a name the model lacks: none
                    for title, entries in self.layout]
        rest = [field for name, field in fields.items() if name not in placed]
        if rest:
            sections.insert(len(sections) - 1, (MORE, rest))
        return tuple(sections)

    def values_for_spec(self, values: Mapping[str, Any]) -> dict:
        """The form's values of the kind's options, by option name (what its spec function takes)."""
        return {o.name: values[o.name] for o in infos(self.options) if o.gui and o.name in values}

    def field_for(self, field: str, rows: Mapping[str, Any]) -> str | None:
        """The form field that shows an error the engine reported for `field`."""
        if field in rows:
            return field
        short = field.removeprefix("studio.")
        if short in rows:
            return short
        if "overrides" in rows and (("." in field) or field in ("model_type", "net_type", "classes", "n_sample",
                                                                   "batch_size", "lrate", "ema", "n_epoch")):
            return "overrides"
        if field in ("checkpoints",) and "checkpoint" in rows:
            return "checkpoint"
        return None


def _parent_dir(values: dict, workspace: Path) -> Path:
    run_id = values.get("parent")
    if not run_id:
        raise ConfigError("parent", "is not chosen; train a model first, or pick one of the train runs")
    return workspace / "runs" / run_id


def _build_train(v: dict, workspace: Path) -> dict:
    cfg = merged_config(v["config"], v.get("overrides"))
    spec = train_spec(config=cfg, **KIND["train"].values_for_spec(v))
    spec["name"] = spec["name"] or default_train_name(v["config"], spec["data"])
    if v.get("sweep"):
        spec["options"]["sweep"] = _sweep_plan(v, spec, workspace)
    return spec


# The sweep plan's fields as the train form names them (the rest are marked at the group's box).
SWEEP_FIELDS = {name: f"sweep_{name}" for name in SweepOptions.model_fields}


def _sweep_plan(v: dict, spec: dict, workspace: Path) -> dict:
    """The plan `ddae train --sweep` makes, from the form's "Evaluate checkpoints while training" group."""
    sweep = parse_options(SweepOptions, {name: v.get(field) for name, field in SWEEP_FIELDS.items()})
    try:
        return sweep_plan(parse_model_config(spec["config"]), workspace, **sweep.model_dump(),
                          device=spec["device"]["request"], seed=spec["options"]["seed"])   # a grid run's own
    except ConfigError as exc:
        message = str(exc).removeprefix(f"{exc.field}: ")
        raise ConfigError(SWEEP_FIELDS.get(exc.field, "sweep"), message) from None
    except UserError as exc:        # pytorch-fid or the Inception weights missing: FID is what needs them
        raise ConfigError("sweep_fid_n", f"{exc} Or set FID samples to 0 for probes only.") from None


def point_build(kind: KindForm, v: dict, workspace: Path) -> Build:
    """The spec of one point of a grid launched from the form (jobs.grid_sweep.grid_specs): for a train job
    the preset with its overrides, each point's config keys set, as `ddae train --grid` builds it."""
    if kind.name == "train":
        evaluate = (lambda spec: _sweep_plan(v, spec, workspace)) if v.get("sweep") else None
        return train_build(merged_config(v["config"], v.get("overrides")), v["config"], evaluate)
    return lambda options, _config_keys: kind.build({**v, **options}, workspace)


def _evaluation(kind: str, spec_function: Callable[..., dict]) -> Callable[[dict, Path], dict]:
    """The build function of an evaluation kind: its spec function on the parent and the form's options."""
    def build(v: dict, ws: Path) -> dict:
        return spec_function(_parent_dir(v, ws), **KIND[kind].values_for_spec(v))

    return build


EVAL_HEAD = ["name", PARENT, "checkpoint"]

SAMPLING = ["n", "sampler", "steps"]
# The train form's sweep group: SweepOptions' fields, named sweep_<field> beside the train options.
SWEEP_GROUP = [replace(option_field(o), name=SWEEP_FIELDS[o.name]) for o in infos(SweepOptions)]

KINDS: tuple[KindForm, ...] = (
    KindForm("train", "Pre-train a diffusion model",
            "Train a DDPM or EDM denoiser from a preset. Its loss, samples and checkpoints appear live in "
            "the Run view; evaluations start from its checkpoints.", (
                ("Model", ["name",
                           Field("config", "Preset", "choice"),
                           Field("overrides", "Config overrides", "yaml",
                                 placeholder="YAML merged into the preset, e.g.\nnetwork: {n_channels: 64}",
                                 tip="Any key of the preset, in the official DDAE format")]),
                ("Data", ["data", "data_limit"]),
                ("Schedule", ["steps", "epochs", "batch_size", "lr", "minutes", "checkpoint_every_steps",
                              "sample_every_steps", "monitor_layers", "seed"]),
                ("Evaluate checkpoints while training", [
                    Field("sweep", "Sweep", "check",
                          placeholder="queue an FID and a probe job for each checkpoint as it is saved",
                          tip="As `ddae train --sweep`: the jobs run beside the training on free devices, and the "
                              "run's Accuracy and FID tab fills in as they finish"),
                    *SWEEP_GROUP]),
                _grid(config_keys=True),
                _resources(gpus=True)),
            _build_train, user_error_field="config"),
    KindForm("probe", "Probe grid (layer x noise)",
            "A linear probe on the features of every layer at every noise level (the paper's Figure 2). "
            "Cells appear in the heatmap as they finish.", (
                ("Model", EVAL_HEAD),
                ("Grid", ["timesteps", "layers", "protocol", "standardize", "baselines"]),
                ("Probe training", [Field("quick", "Quick", "check", placeholder="2,000 train / 500 test images"),
                                    "epochs", "batch_size", "lr", "views", "latent_copies", "train_limit",
                                    "test_limit", "cache_memory_mb", "knn_preview", "seed", "data"]),
                _grid(),
                _resources()),
            _evaluation("probe", probe_spec)),
    KindForm("align-uniform", "Alignment and uniformity",
            "Label-free quality of the features over the parent's checkpoints (the paper's Figure 3).", (
                ("Model", ["name", PARENT, "checkpoints"]),
                ("Features", ["layers", "timestep", "limit", "batch_size", "seed", "data"]),
                _grid(),
                _resources()),
            _evaluation("align-uniform", align_spec)),
    KindForm("noisy-classifier", "Noise-conditional classifier",
            "A classifier on one layer's features, tested at every noise level (the paper's Figure 6).", (
                ("Model", EVAL_HEAD),
                ("Classifier", ["layer", "baseline", "epochs", "batch_size", "lr", "width", "depth", "train_limit",
                                "test_limit", "seed", "data"]),
                _grid(),
                _resources()),
            _evaluation("noisy-classifier", noisy_spec)),
    KindForm("finetune", "Fine-tune the encoder",
            "Fine-tune the network truncated at one layer, with a linear head, end to end.", (
                ("Model", EVAL_HEAD),
                ("Fine-tuning", ["layer", "timestep", "epochs", "batch_size", "lr", "scratch", "train_limit",
                                 "test_limit", "seed", "data"]),
                _grid(),
                _resources()),
            _evaluation("finetune", finetune_spec)),
    KindForm("fid", "FID of checkpoints",
            "Sample quality: FID of the EMA model's samples against the training set, for one checkpoint or "
            "all of them (pytorch-fid's Inception network; the official protocol is 50,000 samples).", (
                ("Model", EVAL_HEAD),
                ("Sampling", [*SAMPLING, "batch_size", "dims", "inception", "seed", "data"]),
                _grid(),
                _resources()),
            _evaluation("fid", fid_spec), user_error_field="inception"),
    KindForm("sample", "Sample images",
            "Draw a grid of samples from a checkpoint.", (
                ("Model", EVAL_HEAD),
                ("Sampling", [*SAMPLING, "seed"]),
                _grid(),
                _resources()),
            _evaluation("sample", sample_spec)),
    KindForm("similarity", "Similarity between models (CKA)",
            "Linear CKA and mutual k-NN between every tap of this model and a second one: another checkpoint, "
            "another run, or the same network at random init, on the same images with the same noise.", (
                ("Model A", EVAL_HEAD),
                ("Model B", ["other", "other_checkpoint", "random_init"]),
                ("Features", ["timestep", "layers", "images", "k", "batch_size", "seed", "data"]),
                _resources()),
            _evaluation("similarity", similarity_spec)),
    KindForm("segmentation", "Segmentation probe grid (mIoU)",
            "A per-pixel linear probe over layers x noise on builtin:shapes, whose generator knows each pixel's "
            "shape: a heatmap of mIoU beside the accuracy one.", (
                ("Model", EVAL_HEAD),
                ("Grid", ["timesteps", "layers", "epochs", "batch_size", "lr", "train_limit", "test_limit", "seed",
                          "data"]),
                _resources()),
            _evaluation("segmentation", segmentation_spec)),
)
KIND = {kind.name: kind for kind in KINDS}

__all__ = ["GRID_FIELDS", "KIND", "KINDS", "QUICK", "KindForm", "cuda_available", "deep_merge", "gpus_for",
           "merged_config", "option_field", "parse_number", "point_build"]
