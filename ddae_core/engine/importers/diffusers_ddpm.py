"""diffusers `UNet2DModel` folders of Ho et al.'s DDPM layout -> a Studio config and state dict.

The layout is the official DDAE UNet's; what differs is switched in the config (diffusion.time_input
`index`, network.norm_eps, out_norm_groups, downsample_padding) and the attention's separate q/k/v weights
are stacked into the one projection the Studio network holds (the same linear map). A config the layout
cannot express is refused in one sentence naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import read_checkpoint
from ..errors import CheckpointError
from .safetensors_file import read_safetensors

WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
SCHEDULER_FILE = "scheduler_config.json"
DOWN_TYPES = {"DownBlock2D": False, "AttnDownBlock2D": True}
UP_TYPES = {"UpBlock2D": False, "AttnUpBlock2D": True}
# UNet2DModel fields whose other values change the computation beyond what the Studio network switches.
REQUIRED = {"act_fn": "silu", "time_embedding_type": "positional", "flip_sin_to_cos": False, "freq_shift": 1,
            "center_input_sample": False, "mid_block_scale_factor": 1, "resnet_time_scale_shift": "default",
            "class_embed_type": None, "num_class_embeds": None, "add_attention": True, "downsample_type": "conv",
            "upsample_type": "conv", "attn_norm_num_groups": None, "norm_num_groups": 32, "in_channels": 3,
            "out_channels": 3, "mid_block_type": "UNetMidBlock2D"}
SCHEDULER_DEFAULTS = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
                      "trained_betas": None, "prediction_type": "epsilon", "rescale_betas_zero_snr": False}


@dataclass(frozen=True)
class DiffusersFolder:
    unet_config: Path
    weights: Path
    scheduler_config: Path


def is_diffusers_folder(path: Path) -> bool:
    return path.is_dir() and any((d / "config.json").is_file() for d in (path, path / "unet"))


def find_files(folder: Path) -> DiffusersFolder:
    """The UNet config, its weights and the scheduler config of a pipeline folder or of its `unet/` folder."""
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder; give the diffusers model folder (it holds config.json).")
    unet = folder / "unet" if (folder / "unet" / "config.json").is_file() else folder
    if not (unet / "config.json").is_file():
        raise CheckpointError(f"{folder} holds no config.json nor unet/config.json, so it is not a diffusers model "
                              "folder; give the folder downloaded from the model's page.")
    weights = next((unet / name for name in WEIGHT_FILES if (unet / name).is_file()), None)
    if weights is None:
        raise CheckpointError(f"{unet} holds no {' or '.join(WEIGHT_FILES)}; download the weights file into it.")
    scheduler = next((p for p in (folder / "scheduler" / SCHEDULER_FILE, folder / SCHEDULER_FILE,
                                  unet / SCHEDULER_FILE, unet.parent / "scheduler" / SCHEDULER_FILE) if p.is_file()),
                     None)
    if scheduler is None:
        raise CheckpointError(f"{folder} holds no {SCHEDULER_FILE} (nor scheduler/{SCHEDULER_FILE}); download it "
                              "with the model, since it gives the noise schedule the model was trained with.")
    return DiffusersFolder(unet / "config.json", weights, scheduler)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path} cannot be read as JSON ({exc.__class__.__name__}); re-download it.") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a mapping of fields; re-download it.")
    return data


def _refuse(path: Path, field: str, value, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: {field} is {value!r}, but {what}; only the DDPM layout of Ho et al. "
                           "(UNet2DModel with DownBlock2D/AttnDownBlock2D) can be imported.")


def _int(path: Path, cfg: dict, field: str, low: int, high: int) -> int:
    value = cfg.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _refuse(path, field, value, f"it must be a whole number from {low} to {high}")
    return value


def studio_config(folder: DiffusersFolder) -> dict:
    """The run's config (official YAML format, with the variant switches) from the two JSON files."""
    path = folder.unet_config
    cfg = _read_json(path)
    if cfg.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise _refuse(path, "_class_name", cfg.get("_class_name"), "only UNet2DModel is supported")
    for field, wanted in REQUIRED.items():
        if cfg.get(field, wanted) != wanted and not (field == "mid_block_scale_factor" and cfg[field] == 1.0):
            raise _refuse(path, field, cfg.get(field), f"the DDPM layout has {wanted!r}")
    widths = cfg.get("block_out_channels")
    down, up = cfg.get("down_block_types"), cfg.get("up_block_types")
    if not (isinstance(widths, list) and 1 <= len(widths) <= 10 and isinstance(down, list) and isinstance(up, list)
            and len(down) == len(up) == len(widths)):
        raise _refuse(path, "block_out_channels", widths, "it must list 1 to 10 widths, one per down and up block")
    base = widths[0]
    if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 and w % base == 0 for w in widths) \
            or base % 32:
        raise _refuse(path, "block_out_channels", widths, "each width must be a multiple of the first, which must "
                                                          "be a multiple of 32 (GroupNorm's 32 groups)")
    if any(d not in DOWN_TYPES for d in down) or any(u not in UP_TYPES for u in up) \
            or [DOWN_TYPES[d] for d in down] != [UP_TYPES[u] for u in reversed(up)]:
        raise _refuse(path, "down_block_types/up_block_types", (down, up),
                      "attention must sit at the same resolutions going down and up")
    padding = cfg.get("downsample_padding", 1)
    if padding not in (0, 1):
        raise _refuse(path, "downsample_padding", padding, "the DDPM layout pads by 0 or 1")
    head_dim = cfg.get("attention_head_dim")
    eps = cfg.get("norm_eps", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps <= 0.1:
        raise _refuse(path, "norm_eps", eps, "it must be a number above 0 and at most 0.1")
    size = _int(path, cfg, "sample_size", 1, 1024)
    n_blocks = _int(path, cfg, "layers_per_block", 1, 16)
    config: dict = {
        "model_type": "DDPM",
        "net_type": "UNet",
        "diffusion": {**scheduler_settings(folder.scheduler_config), "time_input": "index"},
        "network": {
            "image_shape": [3, size, size], "n_channels": base, "ch_mults": [w // base for w in widths],
            "is_attn": [DOWN_TYPES[d] for d in down], "dropout": cfg.get("dropout", 0.0),
            "n_blocks": n_blocks, "use_res_for_updown": False,
            "attn_channels_per_head": head_dim, "norm_eps": float(eps), "out_norm_groups": 32,
            "downsample_padding": "asymmetric" if padding == 0 else "symmetric",
        },
        "classes": 10,
    }
    if size == 32:
        config["dataset"] = "cifar"
    blocks = n_blocks + 1
    # The official best tap is the last block one level above the bottom (out_6 of the 35.7M net).
    config["linear"] = {"timestep": 11, "blockname": f"out_{min(2 * blocks, blocks * len(widths))}"}
    return config


def scheduler_settings(path: Path) -> dict:
    """diffusion.{n_T, betas} from a scheduler config; one sentence for a schedule the engine lacks."""
    cfg = {**SCHEDULER_DEFAULTS, **_read_json(path)}
    for field in ("beta_schedule", "trained_betas", "prediction_type", "rescale_betas_zero_snr"):
        if cfg[field] != SCHEDULER_DEFAULTS[field]:
            raise CheckpointError(f"{path}: {field} is {cfg[field]!r}, but Studio's DDPM has only the linear beta "
                                  "schedule and epsilon prediction, so this model cannot be imported.")
    n_t, start, end = cfg["num_train_timesteps"], cfg["beta_start"], cfg["beta_end"]
    if isinstance(n_t, bool) or not isinstance(n_t, int) or not 1 <= n_t <= 100_000:
        raise CheckpointError(f"{path}: num_train_timesteps is {n_t!r}, not a whole number from 1 to 100000.")
    if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in (start, end)) \
            or not 0 < start < end < 1:
        raise CheckpointError(f"{path}: beta_start {start!r} and beta_end {end!r} must be 0 < start < end < 1.")
    return {"n_T": n_t, "betas": [float(start), float(end)]}


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    state = read_checkpoint(path)       # torch.load(weights_only=True) with one-sentence errors
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"Weights file {path} holds other things than tensors; it is not a UNet2DModel's.")
    return state


# Key mapping: (Studio prefix, diffusers prefix) pairs in network order.
RESNET_LEAVES = {"norm1": "norm1", "conv1": "conv1", "time_emb.1": "time_emb_proj", "norm2": "norm2",
                 "conv2.1": "conv2", "shortcut": "conv_shortcut"}
# New and pre-0.14 diffusers names of the attention's parts.
ATTENTION_PARTS = {"norm": ("group_norm",), "q": ("to_q", "query"), "k": ("to_k", "key"), "v": ("to_v", "value"),
                   "output": ("to_out.0", "proj_attn")}


def block_pairs(network: dict) -> Iterator[tuple[str, str, str]]:
    """(kind, Studio prefix, diffusers prefix) of every block: kind is resnet, attention or conv."""
    yield "conv", "image_proj", "conv_in"
    levels, n_blocks = len(network["ch_mults"]), network["n_blocks"]
    i = 0
    for level in range(levels):
        for j in range(n_blocks):
            yield "resnet", f"down.{i}.res", f"down_blocks.{level}.resnets.{j}"
            if network["is_attn"][level]:
                yield "attention", f"down.{i}.attn", f"down_blocks.{level}.attentions.{j}"
            i += 1
        if level < levels - 1:
            yield "conv", f"down.{i}.conv", f"down_blocks.{level}.downsamplers.0.conv"
            i += 1
    yield "resnet", "middle.res1", "mid_block.resnets.0"
    yield "attention", "middle.attn", "mid_block.attentions.0"
    yield "resnet", "middle.res2", "mid_block.resnets.1"
    i = 0
    for u, level in enumerate(reversed(range(levels))):
        for j in range(n_blocks + 1):
            yield "resnet", f"up.{i}.res", f"up_blocks.{u}.resnets.{j}"
            if network["is_attn"][level]:
                yield "attention", f"up.{i}.attn", f"up_blocks.{u}.attentions.{j}"
            i += 1
        if level > 0:
            yield "conv", f"up.{i}.conv", f"up_blocks.{u}.upsamplers.0.conv"
            i += 1
    yield "conv", "norm", "conv_norm_out"
    yield "conv", "final", "conv_out"


def convert_state(source: dict[str, torch.Tensor], network: dict, path: Path
                  ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """diffusers keys -> (Studio state dict, the diffusers key each Studio key came from); every source key must
    be used (CheckpointError names one that is not)."""
    left = dict(source)
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}

    def take(studio: str, names: tuple[str, ...], required: bool = True) -> None:
        for name in names:
            for leaf in ("weight", "bias"):
                if f"{name}.{leaf}" in left:
                    out[f"{studio}.{leaf}"] = left.pop(f"{name}.{leaf}")
                    origin[f"{studio}.{leaf}"] = f"{name}.{leaf}"
            if f"{name}.weight" in source:
                return
        if required:
            raise CheckpointError(f"Weights file {path} has no {names[0]}.weight, which its config's layout needs; "
                                  "the weights and config.json do not belong together.")

    out_time = ("time_emb.lin1", "time_embedding.linear_1"), ("time_emb.lin2", "time_embedding.linear_2")
    for studio, name in out_time:
        take(studio, (name,))
    for kind, studio, name in block_pairs(network):
        if kind == "conv":
            take(studio, (name,))
        elif kind == "resnet":
            for ours, theirs in RESNET_LEAVES.items():
                take(f"{studio}.{ours}", (f"{name}.{theirs}",), required=ours != "shortcut")
        else:
            parts: dict[str, torch.Tensor] = {}
            for part, names in ATTENTION_PARTS.items():
                if part in ("norm", "output"):
                    take(f"{studio}.{part}", tuple(f"{name}.{n}" for n in names))
                    continue
                take(f"_{part}", tuple(f"{name}.{n}" for n in names))
                parts[f"{part}.weight"], parts[f"{part}.bias"] = out.pop(f"_{part}.weight"), out.pop(f"_{part}.bias")
            out[f"{studio}.projection.weight"], out[f"{studio}.projection.bias"] = fuse_qkv(parts, network)
            origin[f"{studio}.projection.weight"] = f"{name}.to_q.weight"
            origin[f"{studio}.projection.bias"] = f"{name}.to_q.bias"
    if left:
        raise CheckpointError(f"Weights file {path} holds {len(left)} weights the DDPM layout does not have "
                              f"(e.g. {next(iter(left))}); it is not a model of this layout.")
    return out, origin


def fuse_qkv(parts: dict[str, torch.Tensor], network: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Separate q, k, v Linear weights -> the Studio projection, which holds each head's [q|k|v] in turn."""
    channels = parts["q.weight"].shape[0]
    if any(parts[f"{p}.weight"].shape != (channels, channels) or parts[f"{p}.bias"].shape != (channels,)
           for p in "qkv"):
        raise CheckpointError(f"An attention block's q/k/v weights are not {channels}x{channels} each; the weights "
                              "file is damaged or not of this layout.")
    head = network["attn_channels_per_head"] or channels
    heads = channels // head
    weight = torch.stack([parts[f"{p}.weight"].reshape(heads, head, -1) for p in "qkv"], dim=1)
    bias = torch.stack([parts[f"{p}.bias"].reshape(heads, head) for p in "qkv"], dim=1)
    return weight.reshape(3 * channels, -1), bias.reshape(3 * channels)
