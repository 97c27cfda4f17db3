"""The job kinds the Launch view offers: their fields, and how their values become a spec.

Each build function only calls the engine's spec function for its kind (ddae_core.jobs.specs,
ddae_core.jobs.eval_specs); the fields they share (device, priority, data, parent) are
declared once here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ddae_core.engine.config import load_config, parse_model_config
from ddae_core.engine.errors import ConfigError, UserError
from ddae_core.jobs.eval_specs import align_spec, fid_spec, finetune_spec, noisy_spec, probe_spec, sample_spec
from ddae_core.jobs.sweep import sweep_plan
from ddae_core.jobs.specs import train_spec

from .launch_fields import Field, parse_number

# The probe form's "quick" box: fewer images to extract features from, the slow part on a CPU.
QUICK = {"train_limit": 2000, "test_limit": 500}

DEVICES = (("auto", "auto (a GPU if there is one)"), ("cpu", "CPU"), ("cuda", "GPU (CUDA)"))


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


def _time_limit(values: dict) -> float | None:
    """The budget in minutes, checked here so that the form marks its own field."""
    minutes = values.get("time_limit_min")
    if minutes is None:
        return None
    if minutes <= 0:
        raise ConfigError("time_limit_min", f"must be greater than 0 (got {minutes:g})")
    return float(minutes)


# Shared fields.
def _device() -> Field:
    return Field("device", "Device", "choice", "auto", DEVICES,
                 "auto runs on a GPU when the machine has one, else on the CPU")


PRIORITY = Field("priority", "Priority", "int", 0, tip="Higher runs first; equal priorities run in order")
PARENT = Field("parent", "Parent run", "parent", tip="The trained model to evaluate (a train or import run)")
CHECKPOINT = Field("checkpoint", "Checkpoint", "checkpoint", tip="latest, or a step the parent saved")
EVAL_DATA = Field("data", "Dataset", "data", tip="Blank: the parent run's dataset")


def _limits(default_train: str = "all", default_test: str = "all") -> list[Field]:
    return [
        Field("train_limit", "Train examples", "int", placeholder=default_train,
              tip="Use at most this many training images (balanced by class); blank for all"),
        Field("test_limit", "Test examples", "int", placeholder=default_test,
              tip="Evaluate on at most this many test images; blank for all"),
    ]


def _resources(gpus: bool = False) -> tuple[str, list[Field]]:
    fields = [_device()]
    if gpus:
        fields.append(Field("gpus", "GPUs", "int", 1, tip="GPUs the job needs (several: DDP with torchrun)"))
    return "Resources", [*fields, PRIORITY]


@dataclass(frozen=True)
class JobKind:
    name: str
    title: str
    about: str
    sections: tuple[tuple[str, list[Field]], ...]
    build: Callable[[dict, Path], dict]
    user_error_field: str = "parent"     # where a field-less UserError is shown

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
    studio = {k: v[k] for k in ("checkpoint_every_steps", "sample_every_steps") if v.get(k) is not None}
    name = v.get("name") or f"{v['config']} on {v.get('data') or 'its dataset'}"
    spec = train_spec(config=cfg, data=v.get("data"), steps=v.get("steps"), batch_size=v.get("batch_size"),
                      lr=v.get("lr"), device=v["device"], name=name, seed=v.get("seed") or 0,
                      gpus=v.get("gpus") or 0, minutes=_time_limit(v), **studio)
    if v.get("sweep"):
        spec["options"]["sweep"] = _sweep_plan(v, spec, workspace)
    return spec


# The sweep plan's fields as the train form names them (the rest are marked at the group's box).
SWEEP_FIELDS = {"checkpoints": "sweep_checkpoints", "fid_n": "sweep_fid_n", "probe": "sweep_probe"}


def _sweep_plan(v: dict, spec: dict, workspace: Path) -> dict:
    """The plan `ddae train --sweep` makes, from the form's "Evaluate checkpoints while training" group."""
    fid_n = v.get("sweep_fid_n")
    try:
        return sweep_plan(parse_model_config(spec["config"]), workspace,
                          checkpoints=v.get("sweep_checkpoints") or "all", fid_n=10000 if fid_n is None else fid_n,
                          probe=v.get("sweep_probe"), device=spec["device"]["request"], seed=v.get("seed") or 0)
    except ConfigError as exc:
        message = str(exc).removeprefix(f"{exc.field}: ")
        raise ConfigError(SWEEP_FIELDS.get(exc.field, "sweep"), message) from None
    except UserError as exc:        # pytorch-fid or the Inception weights missing: FID is what needs them
        raise ConfigError("sweep_fid_n", f"{exc} Or set FID samples to 0 for probes only.") from None


def _eval_common(v: dict) -> dict:
    return {"device": v["device"], "name": v.get("name")}


def _build_probe(v: dict, ws: Path) -> dict:
    return probe_spec(_parent_dir(v, ws), checkpoint=v.get("checkpoint"), timesteps=v.get("timesteps"),
                      layers=v.get("layers") or "all", data=v.get("data"), protocol=v["protocol"],
                      epochs=v.get("epochs") or 15, batch_size=v.get("batch_size") or 128, lr=v.get("lr") or 1e-3,
                      seed=v.get("seed") or 0, train_limit=v.get("train_limit"), test_limit=v.get("test_limit"),
                      standardize=bool(v.get("standardize")), **_eval_common(v))


def _build_align(v: dict, ws: Path) -> dict:
    return align_spec(_parent_dir(v, ws), checkpoints=v.get("checkpoints") or "all", layers=v.get("layers"),
                      timestep=v.get("timestep"), data=v.get("data"), limit=v.get("limit"),
                      batch_size=v.get("batch_size") or 128, **_eval_common(v))


def _build_noisy(v: dict, ws: Path) -> dict:
    return noisy_spec(_parent_dir(v, ws), checkpoint=v.get("checkpoint"), layer=v.get("layer"),
                      baseline=v.get("baseline") or None, epochs=v.get("epochs") or None,
                      batch_size=v.get("batch_size") or 128, lr=v.get("lr"), data=v.get("data"),
                      train_limit=v.get("train_limit"), test_limit=v.get("test_limit"), **_eval_common(v))


def _build_finetune(v: dict, ws: Path) -> dict:
    return finetune_spec(_parent_dir(v, ws), checkpoint=v.get("checkpoint"), layer=v.get("layer"),
                         timestep=v.get("timestep"), epochs=v.get("epochs") or 15,
                         batch_size=v.get("batch_size") or 128, lr=v.get("lr"), scratch=bool(v.get("scratch")),
                         data=v.get("data"), train_limit=v.get("train_limit"), test_limit=v.get("test_limit"),
                         **_eval_common(v))


def _build_fid(v: dict, ws: Path) -> dict:
    return fid_spec(_parent_dir(v, ws), checkpoint=v.get("checkpoint"), n=10000 if v.get("n") is None else v["n"],
                    sampler=v.get("sampler") or None, steps=v.get("steps"), batch_size=v.get("batch_size") or 250,
                    dims=int(v.get("dims") or 2048), inception=v.get("inception"), data=v.get("data"),
                    seed=v.get("seed") or 0, **_eval_common(v))


def _build_sample(v: dict, ws: Path) -> dict:
    return sample_spec(_parent_dir(v, ws), checkpoint=v.get("checkpoint"), n=v.get("n") or 64,
                       sampler=v.get("sampler") or None, steps=v.get("steps"), seed=v.get("seed") or 0,
                       **_eval_common(v))


NAME = Field("name", "Name", placeholder="automatic", tip="A label for the run; editable later in Runs")
EVAL_HEAD = [NAME, PARENT, CHECKPOINT]

KINDS: tuple[JobKind, ...] = (
    JobKind("train", "Pre-train a diffusion model",
            "Train a DDPM or EDM denoiser from a preset. Its loss, samples and checkpoints appear live in "
            "the Run view; evaluations start from its checkpoints.", (
                ("Model", [NAME,
                           Field("config", "Preset", "choice"),
                           Field("overrides", "Config overrides", "yaml",
                                 placeholder="YAML merged into the preset, e.g.\nnetwork: {n_channels: 64}",
                                 tip="Any key of the preset, in the official DDAE format")]),
                ("Data", [Field("data", "Dataset", "data")]),
                ("Schedule", [
                    Field("steps", "Steps", "int", tip="Optimizer steps; blank for the preset's epochs"),
                    Field("batch_size", "Batch size", "int"),
                    Field("lr", "Learning rate", "float"),
                    Field("time_limit_min", "Time limit (min)", "float", placeholder="none",
                          tip="Stop early when this many minutes have passed (the run still ends as done)"),
                    Field("checkpoint_every_steps", "Checkpoint every", "int", tip="Steps between checkpoints"),
                    Field("sample_every_steps", "Samples every", "int", tip="Steps between sample grids"),
                    Field("seed", "Seed", "int", 0)]),
                ("Evaluate checkpoints while training", [
                    Field("sweep", "Sweep", "check",
                          placeholder="queue an FID and a probe job for each checkpoint as it is saved",
                          tip="As `ddae train --sweep`: the jobs run beside the training on free devices, and the "
                              "run's Accuracy and FID tab fills in as they finish"),
                    Field("sweep_checkpoints", "Checkpoints", placeholder="all; or every K (steps)",
                          tip="all checkpoints, or those at multiples of K steps"),
                    Field("sweep_fid_n", "FID samples", "int", placeholder="10000 (0: no FID)",
                          tip="Samples per checkpoint; needs pytorch-fid and the Inception weights file"),
                    Field("sweep_probe", "Probe", placeholder="the config's cell; or 11,out_6; grid; none",
                          tip="Fast protocol: one cell t,layer, the paper's whole grid (its best cell counts), "
                              "or none")]),
                _resources(gpus=True)),
            _build_train, user_error_field="config"),
    JobKind("probe", "Probe grid (layer x noise)",
            "A linear probe on the features of every layer at every noise level (the paper's Figure 2). "
            "Cells appear in the heatmap as they finish.", (
                ("Model", EVAL_HEAD),
                ("Grid", [Field("timesteps", "Timesteps", placeholder="1,11,21 (the paper's)",
                                tip="DDPM timesteps 1..n_T, or EDM sigma indices 1..18"),
                          Field("layers", "Layers", placeholder="all (decoder out_k); every; or out_5,out_6"),
                          Field("protocol", "Protocol", "choice", "fast",
                                (("fast", "fast: cached features, many heads"),
                                 ("official", "official: one head, augmented views"))),
                          Field("standardize", "Standardise", "check",
                                placeholder="zero-mean, unit-variance features (fast only; not the official protocol)",
                                tip="A diagnostic: how much more the features hold than the official probe gets out")]),
                ("Probe training", [Field("quick", "Quick", "check", placeholder="2,000 train / 500 test images"),
                                    Field("epochs", "Epochs", "int", placeholder="15"),
                                    Field("batch_size", "Batch size", "int", placeholder="128"),
                                    Field("lr", "Learning rate", "float", placeholder="0.001"),
                                    *_limits(), Field("seed", "Seed", "int", 0), EVAL_DATA]),
                _resources()),
            _build_probe),
    JobKind("align-uniform", "Alignment and uniformity",
            "Label-free quality of the features over the parent's checkpoints (the paper's Figure 3).", (
                ("Model", [NAME, PARENT,
                           Field("checkpoints", "Checkpoints", placeholder="all; latest; or 500,1000")]),
                ("Features", [Field("layers", "Layers", placeholder="the config's feature layer"),
                              Field("timestep", "Timestep", "int", placeholder="the config's"),
                              Field("limit", "Images", "int", placeholder="all test images"),
                              Field("batch_size", "Batch size", "int", placeholder="128"), EVAL_DATA]),
                _resources()),
            _build_align),
    JobKind("noisy-classifier", "Noise-conditional classifier",
            "A classifier on one layer's features, tested at every noise level (the paper's Figure 6).", (
                ("Model", EVAL_HEAD),
                ("Classifier", [Field("layer", "Layer", placeholder="the config's feature layer"),
                                Field("baseline", "Baseline", "choice", "",
                                      (("", "none: DDAE features"), ("wrn", "WideResNet trained on noisy images"))),
                                Field("epochs", "Epochs", "int", placeholder="15; WRN: 200"),
                                Field("batch_size", "Batch size", "int", placeholder="128"),
                                Field("lr", "Learning rate", "float", placeholder="0.001"),
                                *_limits(), EVAL_DATA]),
                _resources()),
            _build_noisy),
    JobKind("finetune", "Fine-tune the encoder",
            "Fine-tune the network truncated at one layer, with a linear head, end to end.", (
                ("Model", EVAL_HEAD),
                ("Fine-tuning", [Field("layer", "Layer", placeholder="the config's feature layer"),
                                 Field("timestep", "Timestep", "int", placeholder="the config's"),
                                 Field("epochs", "Epochs", "int", placeholder="15"),
                                 Field("batch_size", "Batch size", "int", placeholder="128"),
                                 Field("lr", "Learning rate", "float", placeholder="0.0001"),
                                 Field("scratch", "From scratch", "check", placeholder="random weights (baseline)"),
                                 *_limits(), EVAL_DATA]),
                _resources()),
            _build_finetune),
    JobKind("fid", "FID of checkpoints",
            "Sample quality: FID of the EMA model's samples against the training set, for one checkpoint or "
            "all of them (pytorch-fid's Inception network; the official protocol is 50,000 samples).", (
                ("Model", [NAME, PARENT,
                           Field("checkpoint", "Checkpoint", "checkpoint",
                                 tip="latest, all, or a step the parent saved")]),
                ("Sampling", [Field("n", "Samples", "int", placeholder="10000 (official: 50000)"),
                              Field("sampler", "Sampler", "choice", "",
                                    (("", "default (DDIM or Heun)"), ("ddim", "DDIM"), ("ddpm", "DDPM"),
                                     ("heun", "Heun (EDM)"))),
                              Field("steps", "Steps", "int", placeholder="100 DDIM, 18 Heun"),
                              Field("batch_size", "Batch size", "int", placeholder="250"),
                              Field("dims", "Features", "choice", 2048,
                                    ((2048, "2048 (the standard FID)"), (768, "768"), (192, "192"), (64, "64"))),
                              Field("inception", "Inception weights", placeholder="found by itself",
                                    tip="pt_inception-2015-12-05-6726825d.pth; blank: $DDAE_INCEPTION, the "
                                        "workspace's data/fid/, or torch's hub cache"),
                              Field("seed", "Seed", "int", 0), EVAL_DATA]),
                _resources()),
            _build_fid, user_error_field="inception"),
    JobKind("sample", "Sample images",
            "Draw a grid of samples from a checkpoint.", (
                ("Model", EVAL_HEAD),
                ("Sampling", [Field("n", "Images", "int", 64),
                              Field("sampler", "Sampler", "choice", "",
                                    (("", "default (DDIM or Heun)"), ("ddim", "DDIM"), ("ddpm", "DDPM"),
                                     ("heun", "Heun (EDM)"))),
                              Field("steps", "Steps", "int", placeholder="100 DDIM, 18 Heun"),
                              Field("seed", "Seed", "int", 0)]),
                _resources()),
            _build_sample),
)

__all__ = ["KINDS", "QUICK", "JobKind", "cuda_available", "deep_merge", "gpus_for", "merged_config",
           "parse_number"]
