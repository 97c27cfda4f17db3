"""Model and training configs: the official DDAE YAML format, as-is, plus an optional `studio:` block.

A config is kept as the plain dict the user wrote (so it round-trips into spec.yaml and checkpoints);
`ModelConfig` and `Hyperparameters` (the preset's training values) are validated views of it. Every bad
value raises ConfigError naming the field, before any work starts.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, UserError

# Package data of the `resources` package: found the same way from a wheel and from a checkout's editable install.
PRESET_DIR = Path(str(resources.files("resources") / "presets"))


# Reading.
def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"There is no preset named {name!r}; `ddae presets` lists them: {', '.join(preset_names())}.")
    return path


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"Config file {path} does not exist; check the path.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"Config file {path} cannot be read ({exc.__class__.__name__}); check the file.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"Config file {path} is not valid YAML{where}; fix the syntax.") from None
    if not isinstance(data, dict):
        raise UserError(f"Config file {path} must hold a mapping of fields, not {type(data).__name__}.")
    return data


def load_config(source: str | Path | dict) -> dict:
    """A config from a dict, a YAML path, or a preset name -> a fresh plain dict."""
    if isinstance(source, dict):
        return copy.deepcopy(source)
    text = str(source)
    if not text.endswith((".yaml", ".yml")) and not Path(text).exists() and "/" not in text:
        return read_yaml(preset_path(text))
    return read_yaml(text)


# Field checks.
def _get(cfg: dict, dotted: str, default: Any = ...) -> Any:
    node: Any = cfg
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict):     # `network: 5` must not quietly build the default network
            raise ConfigError(".".join(parts[:i]), f"must be a mapping of fields (got {node!r})")
        if part not in node or (node[part] is None and i < len(parts) - 1):
            if default is ...:
                raise ConfigError(dotted, "is missing")
            return default
        node = node[part]
    return node


def studio_block(cfg: dict) -> dict:
    """The config's `studio:` block ({} when absent); ConfigError when it is not a mapping."""
    studio = cfg.get("studio")
    if studio is None:
        return {}
    if not isinstance(studio, dict):
        raise ConfigError("studio", f"must be a mapping of fields (got {studio!r})")
    return studio


def _number(cfg: dict, dotted: str, default: Any = ..., *, integer: bool = False, low: float | None = None,
            high: float | None = None, low_open: bool = False, high_open: bool = False) -> float:
    value = _get(cfg, dotted, default)
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(dotted, f"must be {kind} (got {value!r})")
    if not math.isfinite(value):          # .nan passes every comparison below; .inf trains to NaN weights
        raise ConfigError(dotted, f"must be a finite number (got {value!r})")
    if integer and not float(value).is_integer():
        raise ConfigError(dotted, f"must be {kind} (got {value!r})")
    if low is not None and (value <= low if low_open else value < low):
        raise ConfigError(dotted, f"must be {'greater than' if low_open else 'at least'} {low} (got {value!r})")
    if high is not None and (value >= high if high_open else value > high):
        raise ConfigError(dotted, f"must be {'less than' if high_open else 'at most'} {high} (got {value!r})")
    return int(value) if integer else float(value)


def _integer(cfg: dict, dotted: str, default: Any = ..., **limits: Any) -> int:
    """_number(..., integer=True), typed as the int it returns."""
    return int(_number(cfg, dotted, default, integer=True, **limits))


def _bool(cfg: dict, dotted: str, default: Any = ...) -> bool:
    value = _get(cfg, dotted, default)
    if not isinstance(value, bool):
        raise ConfigError(dotted, f"must be true or false (got {value!r})")
    return value


def _list(cfg: dict, dotted: str, default: Any = ...) -> list:
    value = _get(cfg, dotted, default)
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(dotted, f"must be a non-empty list (got {value!r})")
    return list(value)


# Upper bounds far past the official configs (n_T 1000, 32 px, 128 channels): a value beyond them is a
# typo that would otherwise try to allocate terabytes before any message.
MAX_N_T = 100_000
MAX_IMAGE_SIZE = 1024
MAX_WIDTH = 1024

# What a DDPM network sees as its time input for the 1-indexed step t: t / n_T (the official code), or t - 1,
# the 0-indexed integer step of Ho et al.'s code and diffusers (whose step k has Studio's noise level t = k + 1).
TIME_INPUTS = ("fraction", "index")
# The DDPM network's strided-conv padding (nets.blocks.Downsample); listed here so that config stays torch-free.
DOWNSAMPLE_PADDINGS = ("symmetric", "asymmetric")
NORM_EPS = 1e-5    # GroupNorm's eps in the official networks
DECODER_ATTNS = ("all", "last")   # attention in every decoder block of a level that has it, or in its last only
OFFICIAL_VARIANTS = {"norm_eps": NORM_EPS, "out_norm_groups": 8, "downsample_padding": "symmetric",
                     "skip_scale": 1.0, "resample_shortcut": False, "decoder_attn": "all"}


# Validated views.
@dataclass(frozen=True)
class ModelConfig:
    raw: dict = field(repr=False)
    framework: str
    diffusion: dict
    network: dict
    classes: int
    feature_timestep: int
    feature_layer: str
    vae: dict = field(default_factory=dict)     # DiT: the VAE folder its latents come from, and its downsampling

    @property
    def resolution(self) -> int:
        """The images' side in pixels (a DiT's: its latents' side times the VAE's downsampling)."""
        if self.framework == "dit":
            return int(self.network["input_size"]) * int(self.vae["downsample"])
        return int(self.network["image_shape"][1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.resolution, self.resolution)


def _betas(cfg: dict) -> list:
    betas = _list(cfg, "diffusion.betas", [1e-4, 0.02])
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in betas) \
            or not 0 < betas[0] < betas[1] < 1:
        raise ConfigError("diffusion.betas", f"must be two numbers 0 < start < end < 1 (got {betas!r})")
    return betas


def parse_model_config(cfg: dict) -> ModelConfig:
    model_type = str(_get(cfg, "model_type")).upper()
    if model_type == "DIT":
        return parse_dit_config(cfg)
    if model_type not in ("DDPM", "EDM"):
        raise ConfigError("model_type", f"must be DDPM, EDM or DiT (got {cfg.get('model_type')!r})")
    net_type = _get(cfg, "net_type", "UNet")
    if net_type != "UNet":
        raise ConfigError("net_type", f"must be UNet (got {net_type!r}); only the UNet is supported")

    if model_type == "DDPM":
        n_t = _integer(cfg, "diffusion.n_T", 1000, low=1, high=MAX_N_T)
        betas = _betas(cfg)
        time_input = _get(cfg, "diffusion.time_input", TIME_INPUTS[0])
        if time_input not in TIME_INPUTS:
            raise ConfigError("diffusion.time_input", f"must be one of {', '.join(TIME_INPUTS)} (got {time_input!r})")
        diffusion: dict[str, Any] = {"n_T": n_t, "betas": (float(betas[0]), float(betas[1]))}
        if time_input != TIME_INPUTS[0]:     # absent in the official configs, so their parsed form stays as it was
            diffusion["time_input"] = time_input
    else:
        diffusion = {
            "sigma_data": _number(cfg, "diffusion.sigma_data", 0.5, low=0, low_open=True),
            "p_mean": _number(cfg, "diffusion.p_mean", -1.2),
            "p_std": _number(cfg, "diffusion.p_std", 1.2, low=0, low_open=True),
            "sigma_min": _number(cfg, "diffusion.sigma_min", 0.002, low=0, low_open=True),
            "sigma_max": _number(cfg, "diffusion.sigma_max", 80, low=0, low_open=True),
            "rho": _number(cfg, "diffusion.rho", 7, low=0, low_open=True),
            "S_min": _number(cfg, "diffusion.S_min", 0.01, low=0),
            "S_max": _number(cfg, "diffusion.S_max", 1, low=0),
            "S_noise": _number(cfg, "diffusion.S_noise", 1.007, low=0),
            "augment_prob": _number(cfg, "diffusion.augment_prob", 0.0, low=0, high=1),
        }
        if diffusion["sigma_max"] <= diffusion["sigma_min"]:
            raise ConfigError("diffusion.sigma_max", "must be greater than diffusion.sigma_min")

    shape = _list(cfg, "network.image_shape", [3, 32, 32])
    if len(shape) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape) \
            or shape[0] != 3 or shape[1] != shape[2] or not 1 <= shape[1] <= MAX_IMAGE_SIZE:
        raise ConfigError("network.image_shape", f"must be [3, size, size] with a size from 1 to {MAX_IMAGE_SIZE} "
                                                 f"(images are RGB; got {shape!r})")
    n_channels = _integer(cfg, "network.n_channels", 128, low=32, high=MAX_WIDTH)
    if n_channels % 32:
        raise ConfigError("network.n_channels", f"must be a multiple of 32 for GroupNorm(32) (got {n_channels})")
    ch_mults = _list(cfg, "network.ch_mults", [1, 2, 2, 2])
    if not all(isinstance(m, int) and not isinstance(m, bool) and 0 < m <= 16 for m in ch_mults) or len(ch_mults) > 10:
        raise ConfigError("network.ch_mults", f"must be at most 10 integers from 1 to 16 (got {ch_mults!r})")
    is_attn = _list(cfg, "network.is_attn", [False, True, False, False][: len(ch_mults)])
    if len(is_attn) != len(ch_mults) or not all(isinstance(a, bool) for a in is_attn):
        raise ConfigError("network.is_attn", f"must be {len(ch_mults)} true/false values, one per ch_mults entry")
    if shape[1] % 2 ** (len(ch_mults) - 1):
        raise ConfigError("network.image_shape", f"size {shape[1]} must be divisible by 2^{len(ch_mults) - 1}")
    augment_dim = _integer(cfg, "network.augment_dim", 0, low=0)
    channels_per_head = _get(cfg, "network.attn_channels_per_head", None)
    if channels_per_head is not None:   # official: channels // it heads in every attention block
        channels_per_head = _integer(cfg, "network.attn_channels_per_head", low=1)
        narrowest = n_channels * min([m for m, a in zip(ch_mults, is_attn) if a] + [ch_mults[-1]])
        if channels_per_head > narrowest:
            raise ConfigError("network.attn_channels_per_head", f"must be at most {narrowest}, the channels of the "
                              f"narrowest attention block, or absent for one head (got {channels_per_head})")
    out_norm_groups = _integer(cfg, "network.out_norm_groups", OFFICIAL_VARIANTS["out_norm_groups"], low=1)
    if (n_channels * ch_mults[0]) % out_norm_groups:
        raise ConfigError("network.out_norm_groups", f"must divide the last block's {n_channels * ch_mults[0]} "
                                                     f"channels (got {out_norm_groups})")
    downsample_padding = _get(cfg, "network.downsample_padding", OFFICIAL_VARIANTS["downsample_padding"])
    if downsample_padding not in DOWNSAMPLE_PADDINGS:
        raise ConfigError("network.downsample_padding", f"must be one of {', '.join(DOWNSAMPLE_PADDINGS)} "
                                                        f"(got {downsample_padding!r})")
    if model_type == "EDM" and diffusion["augment_prob"] > 0 and augment_dim != 9:
        raise ConfigError("network.augment_dim", "must be 9 when diffusion.augment_prob is above 0")
    network = {
        "image_shape": tuple(shape),
        "n_channels": n_channels,
        "ch_mults": tuple(ch_mults),
        "is_attn": tuple(is_attn),
        "dropout": _number(cfg, "network.dropout", 0.1, low=0, high=1, high_open=True),
        "n_blocks": _integer(cfg, "network.n_blocks", 2, low=1, high=16),
        "use_res_for_updown": _bool(cfg, "network.use_res_for_updown", False),
        "augment_dim": augment_dim,
        "attn_channels_per_head": channels_per_head,
    }
    # Other codebases' variants of the layout (diffusers' DDPM, EDM's DDPM++), kept out of the parsed network where
    # they are the official values, so that an official config parses (and keys its caches) as it always did.
    decoder_attn = _get(cfg, "network.decoder_attn", OFFICIAL_VARIANTS["decoder_attn"])
    if decoder_attn not in DECODER_ATTNS:
        raise ConfigError("network.decoder_attn", f"must be one of {', '.join(DECODER_ATTNS)} (got {decoder_attn!r})")
    official = OFFICIAL_VARIANTS
    variants = {"norm_eps": _number(cfg, "network.norm_eps", official["norm_eps"], low=0, low_open=True, high=0.1),
                "out_norm_groups": out_norm_groups, "downsample_padding": downsample_padding,
                "skip_scale": _number(cfg, "network.skip_scale", official["skip_scale"], low=0, low_open=True, high=1),
                "resample_shortcut": _bool(cfg, "network.resample_shortcut", official["resample_shortcut"]),
                "decoder_attn": decoder_attn}
    network.update({k: v for k, v in variants.items() if v != official[k]})
    framework = model_type.lower()
    default_t = 11 if framework == "ddpm" else 4
    return ModelConfig(
        raw=copy.deepcopy(cfg),
        framework=framework,
        diffusion=diffusion,
        network=network,
        classes=_integer(cfg, "classes", 10, low=1, high=100_000),
        feature_timestep=_integer(cfg, "linear.timestep", default_t, low=0),
        feature_layer=str(_get(cfg, "linear.blockname", "out_6" if framework == "ddpm" else "out_7")),
    )


def parse_dit_config(cfg: dict) -> ModelConfig:
    """A DiT run's config (importers/dit.py writes it): the DiT code's constructor arguments under `network`,
    its schedule under `diffusion` (0-indexed timesteps), and the VAE folder its latents come from under `vae`."""
    n_t = _integer(cfg, "diffusion.n_T", 1000, low=2, high=MAX_N_T)
    betas = _betas(cfg)
    network: dict[str, Any] = {
        "input_size": _integer(cfg, "network.input_size", 32, low=1, high=MAX_IMAGE_SIZE),
        "patch_size": _integer(cfg, "network.patch_size", 2, low=1, high=64),
        "in_channels": _integer(cfg, "network.in_channels", 4, low=1, high=64),
        "hidden_size": _integer(cfg, "network.hidden_size", 1152, low=4, high=16_384),
        "depth": _integer(cfg, "network.depth", 28, low=1, high=256),
        "num_heads": _integer(cfg, "network.num_heads", 16, low=1, high=256),
        "mlp_ratio": _number(cfg, "network.mlp_ratio", 4.0, low=0, low_open=True, high=64),
        "class_dropout_prob": _number(cfg, "network.class_dropout_prob", 0.1, low=0, low_open=True, high=1,
                                      high_open=True),
        "num_classes": _integer(cfg, "network.num_classes", 1000, low=1, high=100_000),
        "learn_sigma": _bool(cfg, "network.learn_sigma", True),
    }
    if network["input_size"] % network["patch_size"]:
        raise ConfigError("network.patch_size", f"must divide network.input_size {network['input_size']}")
    if network["hidden_size"] % 4:
        raise ConfigError("network.hidden_size", "must be a multiple of 4 (its 2-D position codes)")
    if network["hidden_size"] % network["num_heads"]:
        raise ConfigError("network.num_heads", f"must divide network.hidden_size {network['hidden_size']}")
    folder = _get(cfg, "vae.folder")
    if not isinstance(folder, str) or not folder:
        raise ConfigError("vae.folder", f"must be the path of the VAE folder (got {folder!r})")
    vae = {"folder": folder, "downsample": _integer(cfg, "vae.downsample", 8, low=1, high=64)}
    depth = network["depth"]
    layer = str(_get(cfg, "linear.blockname", "layer-13" if depth > 13 else f"layer-{depth // 2}"))
    if layer not in [f"layer-{i}" for i in range(depth)]:
        raise ConfigError("linear.blockname", f"must be one of layer-0..layer-{depth - 1} (got {layer!r})")
    return ModelConfig(
        raw=copy.deepcopy(cfg),
        framework="dit",
        diffusion={"n_T": n_t, "betas": (float(betas[0]), float(betas[1]))},
        network=network,
        classes=_integer(cfg, "classes", 10, low=1, high=100_000),
        feature_timestep=_integer(cfg, "linear.timestep", 121, low=0, high=n_t - 1),
        feature_layer=layer,
        vae=vae,
    )


LR_DECAYS = ("none", "linear")


@dataclass(frozen=True)
class Hyperparameters:
    """A preset's (or config's) pre-training hyper-parameters, from the official keys with `studio:` overrides;
    `jobs.specs.train_spec` merges the form's values over them into the run's TrainSettings."""

    batch_size: int
    lr: float
    warmup_steps: int | None      # linear per-step warm-up (ours); None means the official per-epoch warm-up
    warm_epoch: int               # official: lr * min((epoch+1)/warm_epoch, 1), a step per epoch
    lr_decay: str                 # none (official: constant after warm-up) or linear (to 0 at the last step)
    ema_decay: float
    ema_warmup: bool              # ema-pytorch's min(decay, 1 - k^-2/3) schedule, as the official runs
    flip: bool
    epochs: int
    steps: int | None             # overrides epochs when given
    grad_clip: float
    checkpoint_every_steps: int
    sample_every_steps: int
    n_sample: int
    sample_steps: int | None      # the sampler's steps for the training grids; None: the framework's
    log_every_steps: int
    amp: str                      # device.amp_dtype_for's request: auto, bf16, fp16, fp32
    dataset: str


def parse_hyperparameters(cfg: dict) -> Hyperparameters:
    studio = studio_block(cfg)
    warmup_steps = _integer(cfg, "studio.warmup_steps", None, low=0) \
        if studio.get("warmup_steps") is not None else None
    steps = _integer(cfg, "studio.steps", None, low=1) if studio.get("steps") is not None else None
    official_lr = _number(cfg, "lrate", 1e-4, low=0, low_open=True)     # checked even when studio.lr wins
    lr_decay = str(studio.get("lr_decay") or "none")
    if lr_decay not in LR_DECAYS:
        raise ConfigError("studio.lr_decay", f"must be one of {', '.join(LR_DECAYS)} (got {lr_decay!r})")
    return Hyperparameters(
        batch_size=_integer(cfg, "batch_size", 128, low=1),
        lr=_number(cfg, "studio.lr", None, low=0, low_open=True) if studio.get("lr") is not None
        else official_lr,
        warmup_steps=warmup_steps,
        warm_epoch=_integer(cfg, "warm_epoch", 0, low=0),
        lr_decay=lr_decay,
        ema_decay=_number(cfg, "ema", 0.9999, low=0, high=1, high_open=True),
        ema_warmup=_bool(cfg, "studio.ema_warmup", True),
        flip=_bool(cfg, "flip", True),
        epochs=_integer(cfg, "n_epoch", 2000, low=1),
        steps=steps,
        grad_clip=_number(cfg, "studio.grad_clip", 1.0, low=0, low_open=True),
        checkpoint_every_steps=_integer(cfg, "studio.checkpoint_every_steps", 1000, low=1),
        sample_every_steps=_integer(cfg, "studio.sample_every_steps", 1000, low=1),
        n_sample=_integer(cfg, "n_sample", 30, low=1, high=1024),
        sample_steps=_integer(cfg, "studio.sample_steps", low=1) if studio.get("sample_steps") is not None else None,
        log_every_steps=_integer(cfg, "studio.log_every_steps", 10, low=1),
        amp=str(studio.get("amp") or "auto"),
        dataset=str(studio.get("dataset") or {"cifar": "cifar10", "tiny": "tiny-imagenet"}.get(
            str(cfg.get("dataset", "")), "builtin:shapes")),
    )
