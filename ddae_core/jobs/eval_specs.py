"""Validated specs for evaluation jobs. Each names its parent run and checkpoint; bad values name the field."""

from __future__ import annotations

from pathlib import Path

from ..engine import data as datasets
from ..engine.config import load_config, parse_model_config
from ..engine.errors import ConfigError, UserError
from ..engine.evaluation.grid_axes import parse_layers, parse_timesteps
from ..engine.spec.fields import parse_options, spec_options
from ..engine.spec.options import MODELS
from ..rundir import JobKind, read_spec


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


def _base(kind: str, parent_dir: Path, opts, options: dict, checkpoint=None) -> dict:
    """The spec around `options`: the fields every evaluation shares (name, data, parent, device)."""
    parent_spec = read_spec(parent_dir)
    return {
        "kind": kind,
        "name": opts.name or f"{kind} of {parent_spec.get('name') or parent_dir.name}",
        "data": getattr(opts, "data", None),     # a sample job reads no data
        "parent": {"run": parent_dir.name,
                   "checkpoint": _checkpoint(getattr(opts, "checkpoint", None) if checkpoint is None else checkpoint)},
        "device": {"request": opts.device, "gpus": 0 if opts.device == "cpu" else 1},
        "config": None,
        "options": options,
    }


def _parse(kind: str, parent_dir: Path, values: dict):
    """(options checked by the kind's model, the parent's model config)."""
    _, cfg = parent_config(parent_dir)
    return parse_options(MODELS[kind], values), cfg


def probe_spec(parent_dir: Path, **values) -> dict:
    """A probe grid job (ProbeOptions, which reads `standardize` as the older spelling of protocol='standardized')."""
    opts, cfg = _parse("probe", parent_dir, values)
    protocol = opts.protocol
    if opts.standardize and protocol in ("official", "dit-official"):
        raise ConfigError("standardize", "works with the fast protocol only; the official protocol probes raw features")
    if protocol == "official" and cfg.framework == "dit":
        raise ConfigError("protocol", "official is the DDPM/EDM code's probe; a DiT run's official probe is "
                                      "dit-official (on cached latents)")
    if protocol == "dit-official" and cfg.framework != "dit":
        raise ConfigError("protocol", f"dit-official probes a DiT run, not a {cfg.framework.upper()} one; use official")
    timesteps, layers = opts.timesteps, opts.layers
    if protocol == "dit-official":      # the official cell unless others are named (DiT/linear.py's defaults)
        timesteps = timesteps if timesteps not in (None, "", []) else [cfg.feature_timestep]
        layers = [cfg.feature_layer] if layers in (None, "", "all") else layers
    return _base("probe", parent_dir, opts, {
        **spec_options(opts),
        "timesteps": parse_timesteps(timesteps, cfg),
        "layers": parse_layers(layers, cfg),
        # Kept beside the protocol so that readers of older runs (and the runs table's rule) see it too.
        "standardize": protocol == "standardized",
    })


def align_spec(parent_dir: Path, **values) -> dict:
    """Alignment and uniformity over checkpoints (AlignOptions)."""
    opts, cfg = _parse("align-uniform", parent_dir, values)
    checkpoints = opts.checkpoints
    if checkpoints in (None, "", "all", "latest"):
        which = checkpoints or "all"
    else:
        items = checkpoints.split(",") if isinstance(checkpoints, str) else list(checkpoints)
        try:
            which = [int(str(s).strip()) for s in items]
        except ValueError:
            raise ConfigError("checkpoints", f"must be all, latest or step numbers (got {checkpoints!r})") from None
    timestep = opts.timestep
    t = parse_timesteps([timestep] if timestep is not None else [cfg.feature_timestep], cfg, "timestep")[0]
    return _base("align-uniform", parent_dir, opts, {
        **spec_options(opts),
        "checkpoints": which,
        "layers": parse_layers(opts.layers or [cfg.feature_layer], cfg),
        "timestep": t,
    }, checkpoint="latest")


def noisy_spec(parent_dir: Path, **values) -> dict:
    """A noise-conditional classifier (NoisyOptions, which fills in the official epochs and lr of each)."""
    opts, cfg = _parse("noisy-classifier", parent_dir, values)
    if cfg.framework == "dit":
        raise ConfigError("parent", "the noise-conditional classifier noises images, not DiT's latents; probe a DiT "
                                    "run instead")
    baseline = opts.baseline
    if baseline not in (None, "wrn"):
        raise ConfigError("baseline", f"must be wrn or absent (got {baseline!r})")
    if (opts.depth - 4) % 6 or opts.depth < 10:
        raise ConfigError("depth", f"must be 6n+4 and at least 10, like 28 (got {opts.depth})")
    return _base("noisy-classifier", parent_dir, opts, {
        **spec_options(opts),
        "layer": parse_layers([opts.layer or cfg.feature_layer], cfg, "layer")[0],
    })


def finetune_spec(parent_dir: Path, **values) -> dict:
    """Fine-tuning the truncated network (FinetuneOptions)."""
    opts, cfg = _parse("finetune", parent_dir, values)
    timestep = opts.timestep if opts.timestep is not None else cfg.feature_timestep
    return _base("finetune", parent_dir, opts, {
        **spec_options(opts),
        "layer": parse_layers([opts.layer or cfg.feature_layer], cfg, "layer")[0],
        "timestep": parse_timesteps([timestep], cfg, "timestep")[0],
    })


def _check_sampler(cfg, sampler: str | None) -> str | None:
    if cfg.framework == "dit":
        raise ConfigError("parent", "Studio does not sample from DiT; its runs are probed, classified and fine-tuned")
    allowed = ("ddim", "ddpm") if cfg.framework == "ddpm" else ("heun",)
    if sampler is not None and sampler not in allowed:
        raise ConfigError("sampler", f"{sampler} does not apply to {cfg.framework.upper()}; use {' or '.join(allowed)}")
    return sampler


def sample_spec(parent_dir: Path, **values) -> dict:
    """A grid of samples (SampleOptions)."""
    opts, cfg = _parse("sample", parent_dir, values)
    return _base("sample", parent_dir, opts, {**spec_options(opts), "sampler": _check_sampler(cfg, opts.sampler)})


def fid_spec(parent_dir: Path, **values) -> dict:
    """An FID job (FidOptions) over one checkpoint (a step, or latest) or all of them.

    Checks that pytorch-fid and the Inception weights are here (in the parent's workspace) before the run
    exists; `inception` (a path) is kept in the spec, otherwise the worker looks for the file itself.
    """
    from ..engine.evaluation.inception import DIMS, find_weights, require_library

    opts, cfg = _parse("fid", parent_dir, values)
    checkpoint = opts.checkpoint
    try:
        which = "all" if str(checkpoint) == "all" else _checkpoint(checkpoint)
    except ConfigError:
        raise ConfigError("checkpoint", f"must be latest, all or a step number (got {checkpoint!r})") from None
    if opts.dims not in DIMS:
        raise ConfigError("dims", f"must be one of {', '.join(map(str, DIMS))} (got {opts.dims}); 2048 is the "
                                  "standard FID")
    require_library()
    weights = find_weights(Path(parent_dir).parent.parent, opts.inception)
    return _base("fid", parent_dir, opts, {
        "checkpoints": which if which in ("all", "latest") else [which],
        "n": opts.n,
        "sampler": _check_sampler(cfg, opts.sampler),
        "steps": opts.steps,
        "batch_size": opts.batch_size,
        "dims": opts.dims,
        "inception": str(weights) if opts.inception else None,
        **spec_options(opts),
    }, checkpoint="latest" if which == "all" else which)


def import_spec(checkpoint: str | Path, config: str | Path | None = None, *, name=None, data=None,
                fmt: str | None = None, vae: str | Path | None = None) -> dict:
    """An import of an official checkpoint (with its `config`), a diffusers folder or an EDM pickle (`fmt`
    None: detected from the path), which carry their own config, or a DiT checkpoint with its `vae` folder
    (`config`, optional there, sets fields over the config its weights imply)."""
    from ..engine import importers
    from ..engine.importers import dit

    path = Path(checkpoint).expanduser().resolve()
    if fmt == "dit" and not path.is_file():
        raise ConfigError("checkpoint", f"{path} is no file; give {dit.EXPECTED}")
    if not path.exists():
        raise ConfigError("checkpoint", f"{path} does not exist")
    fmt = fmt or importers.detect_format(path)
    if fmt not in importers.FORMATS:
        raise ConfigError("format", f"must be one of {', '.join(importers.FORMATS)} (got {fmt!r})")
    if fmt == "official":
        if config is None:
            raise ConfigError("config", f"{path.name} is an official DDAE checkpoint, which carries no config; pass "
                                        "the YAML config it was trained with")
        if not path.is_file():
            raise ConfigError("checkpoint", f"{path} is a folder, not an official checkpoint file")
        cfg = load_config(config)
    elif fmt == "dit":
        cfg = dit.studio_config(path, vae, load_config(config) if config is not None else None, data)
    elif config is not None:
        raise ConfigError("config", f"a {fmt} model carries its own config; leave --config out")
    else:
        cfg = importers.source_config(path, fmt)
    parse_model_config(cfg)
    if data is not None:
        datasets.check_data_spec(data)
    weights = importers.weights_file(path, fmt)
    return {
        "kind": JobKind.IMPORT,
        "name": name or (path.name if path.is_dir() else path.stem),
        "data": data or {"cifar": "cifar10", "tiny": "tiny-imagenet"}.get(str(cfg.get("dataset")), "cifar10"),
        "parent": None,
        "device": {"request": "cpu", "gpus": 0},
        "config": cfg,
        "options": {"source": str(path), "format": fmt, "sha256": importers.sha256(weights),
                    "licence": dit.LICENCE if fmt == "dit" else importers.licence(path)},
    }
