"""Validated specs for evaluation jobs. Each names its parent run and checkpoint; bad values name the field."""

from __future__ import annotations

from pathlib import Path

from ..engine import data as datasets
from ..engine.config import load_config, parse_model_config
from ..engine.errors import ConfigError, UserError
from .specs import _positive_float, _positive_int, check_device, check_seed
from ..engine.runs import read_spec
from ..engine.evaluation.grid_axes import parse_layers, parse_timesteps
from ..engine.evaluation.protocols import PROTOCOLS


def parent_config(parent_dir: Path):
    spec = read_spec(parent_dir)
    if not isinstance(spec.get("config"), dict):
        raise UserError(f"Run {parent_dir.name} ({spec.get('kind')}) has no model to evaluate; pick a train or "
                        "import run.")
    return spec, parse_model_config(spec["config"])


def _checkpoint(value) -> str | int:
    if value is None or str(value) == "latest":
        return "latest"
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError("checkpoint", f"must be 'latest' or a step number (got {value!r})") from None


def _base(kind: str, parent_dir: Path, checkpoint, device: str, data: str | None, name: str | None,
          options: dict) -> dict:
    if data is not None:
        try:
            datasets.check_data_spec(data)
        except UserError as exc:
            raise ConfigError("data", str(exc)) from None
    parent_spec = read_spec(parent_dir)
    return {
        "kind": kind,
        "name": name or f"{kind} of {parent_spec.get('name') or parent_dir.name}",
        "data": data,
        "parent": {"run": parent_dir.name, "checkpoint": _checkpoint(checkpoint)},
        "device": {"request": check_device(device), "gpus": 0 if device == "cpu" else 1},
        "config": None,
        "options": options,
    }


def probe_spec(parent_dir: Path, *, checkpoint="latest", timesteps=None, layers="all", data=None,
               protocol: str = "fast", epochs=15, batch_size=128, lr=1e-3, views=1, device="auto", seed=0,
               train_limit=None, test_limit=None, cache_memory_mb=None, standardize=False, baselines=True,
               name=None) -> dict:
    """A probe grid job; `standardize` is the older spelling of protocol='standardized'."""
    _, cfg = parent_config(parent_dir)
    if protocol not in PROTOCOLS:
        raise ConfigError("protocol", f"must be one of {', '.join(PROTOCOLS)} (got {protocol!r})")
    if standardize and protocol == "official":
        raise ConfigError("standardize", "works with the fast protocol only; the official protocol probes raw features")
    if standardize:
        protocol = "standardized"
    return _base("probe", parent_dir, checkpoint, device, data, name, {
        "protocol": protocol,
        "timesteps": parse_timesteps(timesteps, cfg),
        "layers": parse_layers(layers, cfg),
        "epochs": _positive_int("epochs", epochs),
        "batch_size": _positive_int("batch_size", batch_size),
        "lr": _positive_float("lr", lr),
        "views": _positive_int("views", views),
        "seed": check_seed(seed),
        "train_limit": _positive_int("train_limit", train_limit),
        "test_limit": _positive_int("test_limit", test_limit),
        # 0 means: keep no features in memory, spill every timestep's cache to disk.
        "cache_memory_mb": _positive_int("cache_memory_mb", cache_memory_mb, minimum=0),
        # Kept beside the protocol so that readers of older runs (and the runs table's rule) see it too.
        "standardize": protocol == "standardized",
        "baselines": bool(baselines),
    })


def align_spec(parent_dir: Path, *, checkpoints="all", layers=None, timestep=None, data=None, device="auto",
               seed=0, limit=None, batch_size=128, name=None) -> dict:
    _, cfg = parent_config(parent_dir)
    if checkpoints in (None, "", "all", "latest"):
        which = checkpoints or "all"
    else:
        items = checkpoints.split(",") if isinstance(checkpoints, str) else list(checkpoints)
        try:
            which = [int(str(s).strip()) for s in items]
        except ValueError:
            raise ConfigError("checkpoints", f"must be all, latest or step numbers (got {checkpoints!r})") from None
    t = parse_timesteps([timestep] if timestep is not None else [cfg.feature_timestep], cfg, "timestep")[0]
    spec = _base("align-uniform", parent_dir, "latest", device, data, name, {
        "checkpoints": which,
        "layers": parse_layers(layers or [cfg.feature_layer], cfg),
        "timestep": t,
        "seed": check_seed(seed),
        "limit": _positive_int("limit", limit),
        "batch_size": _positive_int("batch_size", batch_size),
    })
    return spec


def noisy_spec(parent_dir: Path, *, checkpoint="latest", layer=None, baseline=None, epochs=None, batch_size=128,
               lr=None, width=10, depth=28, data=None, device="auto", seed=0, train_limit=None, test_limit=None,
               name=None) -> dict:
    _, cfg = parent_config(parent_dir)
    if baseline not in (None, "wrn"):
        raise ConfigError("baseline", f"must be wrn or absent (got {baseline!r})")
    if (depth - 4) % 6 or depth < 10:
        raise ConfigError("depth", f"must be 6n+4 and at least 10, like 28 (got {depth})")
    return _base("noisy-classifier", parent_dir, checkpoint, device, data, name, {
        "layer": parse_layers([layer or cfg.feature_layer], cfg, "layer")[0],
        "baseline": baseline,
        # The official scripts' defaults: 200 epochs for the WRN (noisy_classifier_WRN.py), 15 for the head.
        "epochs": _positive_int("epochs", epochs) if epochs is not None else (200 if baseline == "wrn" else 15),
        "batch_size": _positive_int("batch_size", batch_size),
        "lr": _positive_float("lr", lr) if lr is not None else (0.1 if baseline == "wrn" else 1e-3),
        "width": _positive_int("width", width),
        "depth": _positive_int("depth", depth),
        "seed": check_seed(seed),
        "train_limit": _positive_int("train_limit", train_limit),
        "test_limit": _positive_int("test_limit", test_limit),
    })


def finetune_spec(parent_dir: Path, *, layer=None, timestep=None, checkpoint="latest", epochs=15, batch_size=128,
                  lr=None, scratch=False, data=None, device="auto", seed=0, train_limit=None, test_limit=None,
                  name=None) -> dict:
    _, cfg = parent_config(parent_dir)
    return _base("finetune", parent_dir, checkpoint, device, data, name, {
        "layer": parse_layers([layer or cfg.feature_layer], cfg, "layer")[0],
        "timestep": parse_timesteps([timestep if timestep is not None else cfg.feature_timestep], cfg, "timestep")[0],
        "epochs": _positive_int("epochs", epochs),
        "batch_size": _positive_int("batch_size", batch_size),
        "lr": _positive_float("lr", lr) if lr is not None else 1e-4,
        "scratch": bool(scratch),
        "seed": check_seed(seed),
        "train_limit": _positive_int("train_limit", train_limit),
        "test_limit": _positive_int("test_limit", test_limit),
    })


def _check_sampler(cfg, sampler: str | None) -> str | None:
    allowed = ("ddim", "ddpm") if cfg.framework == "ddpm" else ("heun",)
    if sampler is not None and sampler not in allowed:
        raise ConfigError("sampler", f"{sampler} does not apply to {cfg.framework.upper()}; use {' or '.join(allowed)}")
    return sampler


def sample_spec(parent_dir: Path, *, checkpoint="latest", n=64, sampler=None, steps=None, seed=0, device="auto",
                name=None) -> dict:
    _, cfg = parent_config(parent_dir)
    _check_sampler(cfg, sampler)
    n = _positive_int("n", n)
    if n > 4096:
        raise ConfigError("n", f"must be at most 4096 (got {n})")
    return _base("sample", parent_dir, checkpoint, device, None, name, {
        "n": n, "sampler": sampler, "steps": _positive_int("steps", steps), "seed": check_seed(seed)})


def fid_spec(parent_dir: Path, *, checkpoint="latest", n=10000, sampler=None, steps=None, batch_size=250, dims=2048,
             inception=None, data=None, device="auto", seed=0, name=None) -> dict:
    """An FID job over one checkpoint (a step, or latest) or all of them.

    Checks that pytorch-fid and the Inception weights are here (in the parent's workspace) before the run
    exists; `inception` (a path) is kept in the spec, otherwise the worker looks for the file itself.
    """
    from ..engine.evaluation.inception import DIMS, find_weights, require_library

    _, cfg = parent_config(parent_dir)
    try:
        which = "all" if str(checkpoint) == "all" else _checkpoint(checkpoint)
    except ConfigError:
        raise ConfigError("checkpoint", f"must be latest, all or a step number (got {checkpoint!r})") from None
    if int(dims) not in DIMS:
        raise ConfigError("dims", f"must be one of {', '.join(map(str, DIMS))} (got {dims}); 2048 is the standard FID")
    require_library()
    weights = find_weights(Path(parent_dir).parent.parent, inception)
    return _base("fid", parent_dir, "latest" if which == "all" else which, device, data, name, {
        "checkpoints": which if which in ("all", "latest") else [which],
        "n": _positive_int("n", n, minimum=2),
        "sampler": _check_sampler(cfg, sampler),
        "steps": _positive_int("steps", steps),
        "batch_size": _positive_int("batch_size", batch_size),
        "dims": int(dims),
        "inception": str(weights) if inception else None,
        "seed": check_seed(seed),
    })


def import_spec(checkpoint: str | Path, config: str | Path, *, name=None, data=None) -> dict:
    cfg = load_config(config)
    parse_model_config(cfg)
    path = Path(checkpoint).expanduser().resolve()
    if not path.is_file():
        raise ConfigError("checkpoint", f"{path} does not exist")
    if data is not None:
        datasets.check_data_spec(data)
    return {
        "kind": "import",
        "name": name or path.stem,
        "data": data or {"cifar": "cifar10", "tiny": "tiny-imagenet"}.get(str(cfg.get("dataset")), "cifar10"),
        "parent": None,
        "device": {"request": "cpu", "gpus": 0},
        "config": cfg,
        "options": {"source": str(path)},
    }
