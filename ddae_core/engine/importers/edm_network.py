"""NVlabs EDM network pickles (EDMPrecond around a DDPM++ SongUNet) -> a Studio config and state dict.

The pickle is read by safe_pickle (nothing in it runs). EDM's DDPM++ is the DDPM++ shape of Studio's UNet
with these switches: skip_scale sqrt(1/2) after every residual and attention sum, a 1x1 convolution on
the resampled shortcut of up/down blocks (resample_shortcut), attention only in the last decoder block of
a level (decoder_attn `last`), GroupNorm eps 1e-6 and 32 groups in the output norm. Its noise input and
preconditioning (c_noise = ln(sigma)/4) are Studio's EDM framework's. Written from the EDM paper and the
persistence format; no EDM code is used.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from . import safe_pickle
from .safe_pickle import Record

# SongUNet's constructor defaults, for arguments a pickle's record leaves out.
SONG_UNET_DEFAULTS = {"label_dim": 0, "augment_dim": 0, "model_channels": 128, "channel_mult": [1, 2, 2, 2],
                      "channel_mult_emb": 4, "num_blocks": 4, "attn_resolutions": [16], "dropout": 0.10,
                      "embedding_type": "positional", "channel_mult_noise": 1, "encoder_type": "standard",
                      "decoder_type": "standard", "resample_filter": [1, 1]}
# The DDPM++ choices; NCSN++ (fourier, residual, [1,3,3,1]) and class-conditional networks differ.
DDPMPP = {"embedding_type": "positional", "channel_mult_noise": 1, "encoder_type": "standard",
          "decoder_type": "standard", "resample_filter": [1, 1], "channel_mult_emb": 4, "label_dim": 0,
          "in_channels": 3, "out_channels": 3}
MIN_CHANNELS = 128    # EDM's GroupNorm has min(32, C // 4) groups: 32, as Studio's, from 128 channels on


def read_network(path: Path) -> Record:
    """The EDMPrecond record of an EDM pickle (its `ema` entry, or the pickle itself)."""
    try:
        with path.open("rb") as fh:
            data = safe_pickle.load(fh)
    except OSError as exc:
        raise CheckpointError(f"EDM pickle {path} cannot be read ({exc.strerror or exc}); check the path.") from None
    except safe_pickle.RefusedPickle as exc:
        raise CheckpointError(f"EDM pickle {path} was refused: {exc}.") from None
    network = data.get("ema") if isinstance(data, dict) else data
    if not isinstance(network, Record):
        raise CheckpointError(f"EDM pickle {path} holds no network record (no `ema` entry); it is not an EDM "
                              "network pickle.")
    if network.class_name != "EDMPrecond":
        raise CheckpointError(f"EDM pickle {path} holds a {network.class_name}, but only EDMPrecond networks (the "
                              "EDM paper's preconditioning) can be imported.")
    return network


def _child(record: Record, name: str, path: Path) -> Record:
    child = (record.state.get("_modules") or {}).get(name)
    if not isinstance(child, Record):
        raise CheckpointError(f"EDM pickle {path}: the {record.class_name} has no {name} module; the pickle is "
                              "damaged or not an EDM network.")
    return child


def _number(record: Record, name: str, path: Path) -> float:
    value = record.state.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CheckpointError(f"EDM pickle {path}: the {record.class_name}'s {name} is {value!r}, not a number.")
    return float(value)


def studio_config(path: Path) -> dict:
    """The run config an EDM pickle's records describe; one sentence for anything not DDPM++."""
    precond = read_network(path)
    unet = _child(precond, "model", path)
    if unet.class_name != "SongUNet":
        raise CheckpointError(f"EDM pickle {path} holds a {unet.class_name} network, but only SongUNet (DDPM++) "
                              "networks can be imported.")
    given = unet.state.get("_init_kwargs")
    if not isinstance(given, dict):
        raise CheckpointError(f"EDM pickle {path} does not record its SongUNet's constructor arguments; it cannot "
                              "be imported.")
    kwargs = {**SONG_UNET_DEFAULTS, **given}
    for key, wanted in DDPMPP.items():
        value = kwargs.get(key, wanted)
        if (list(value) if isinstance(value, tuple) else value) != wanted:
            raise CheckpointError(f"EDM pickle {path}: its SongUNet has {key}={value!r}, but only the "
                                  f"unconditional DDPM++ architecture ({key}={wanted!r}) can be imported.")
    channels, mults = kwargs["model_channels"], kwargs["channel_mult"]
    size, blocks = kwargs.get("img_resolution"), kwargs["num_blocks"]
    if not (isinstance(channels, int) and isinstance(size, int) and isinstance(blocks, int)
            and isinstance(mults, (list, tuple)) and 1 <= len(mults) <= 10
            and all(isinstance(m, int) and m > 0 for m in mults) and 0 < size <= 1024):
        raise CheckpointError(f"EDM pickle {path}: its SongUNet's sizes are not whole numbers in range.")
    if channels < MIN_CHANNELS or channels % 32:
        raise CheckpointError(f"EDM pickle {path}: its SongUNet has {channels} base channels; Studio's GroupNorm "
                              f"needs a multiple of 32 from {MIN_CHANNELS} on, as EDM's published networks have.")
    attn = kwargs["attn_resolutions"]
    block = _child(_child(unet, "enc", path), f"{size}x{size}_block0", path)
    skip_scale = _number(block, "skip_scale", path)
    if block.state.get("adaptive_scale") or block.state.get("num_heads") not in (0, 1, None):
        raise CheckpointError(f"EDM pickle {path}: its blocks use adaptive scale or several attention heads, "
                              "which DDPM++ does not.")
    eps = _number(_child(block, "norm0", path), "eps", path)
    config: dict[str, Any] = {
        "model_type": "EDM",
        "net_type": "UNet",
        "diffusion": {name: _number(precond, name, path) for name in ("sigma_data", "sigma_min", "sigma_max")},
        "network": {
            "image_shape": [3, size, size], "n_channels": channels, "ch_mults": list(mults),
            "is_attn": [size >> level in attn for level in range(len(mults))], "dropout": kwargs["dropout"],
            "n_blocks": blocks, "use_res_for_updown": True, "augment_dim": kwargs["augment_dim"],
            "attn_channels_per_head": None, "norm_eps": eps, "out_norm_groups": 32, "skip_scale": skip_scale,
            "resample_shortcut": True, "decoder_attn": "last",
        },
        "classes": 10,
        # The official EDM best tap is the second block of the first decoder level above the bottom (out_7).
        "linear": {"timestep": 4, "blockname": f"out_{min(blocks + 3, (blocks + 1) * len(mults))}"},
    }
    if size == 32:
        config["dataset"] = "cifar"
    return config


def flat_state(record: Record, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, tensor or None) of every parameter and buffer under a module record."""
    for group in ("_parameters", "_buffers"):
        for name, value in (record.state.get(group) or {}).items():
            yield prefix + name, value
    for name, child in (record.state.get("_modules") or {}).items():
        if isinstance(child, Record):
            yield from flat_state(child, f"{prefix}{name}.")


RES_LEAVES = {"norm0": "norm1", "conv0": "conv1", "affine": "time_emb.1", "norm1": "norm2", "conv1": "conv2.1",
              "skip": "shortcut"}
ATTN_LEAVES = {"norm2": "norm", "qkv": "projection", "proj": "output"}


def block_pairs(network: dict) -> Iterator[tuple[str, str, str]]:
    """(Studio residual prefix, Studio attention prefix or '', EDM block prefix) in network order."""
    size, levels, blocks = network["image_shape"][1], len(network["ch_mults"]), network["n_blocks"]
    i = 0
    for level in range(levels):
        res = f"{size >> level}x{size >> level}"
        if level > 0:
            yield f"down.{i}.op", "", f"model.enc.{res}_down"
            i += 1
        for idx in range(blocks):
            yield f"down.{i}.res", f"down.{i}.attn" if network["is_attn"][level] else "", f"model.enc.{res}_block{idx}"
            i += 1
    bottom = f"{size >> (levels - 1)}x{size >> (levels - 1)}"
    yield "middle.res1", "middle.attn", f"model.dec.{bottom}_in0"
    yield "middle.res2", "", f"model.dec.{bottom}_in1"
    i = 0
    for level in reversed(range(levels)):
        res = f"{size >> level}x{size >> level}"
        if level < levels - 1:
            yield f"up.{i}.op", "", f"model.dec.{res}_up"
            i += 1
        for idx in range(blocks + 1):
            has_attn = network["is_attn"][level] and idx == blocks
            yield f"up.{i}.res", f"up.{i}.attn" if has_attn else "", f"model.dec.{res}_block{idx}"
            i += 1


def convert_state(network_record: Record, network: dict, path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """EDM parameter names -> (Studio state dict, the EDM name each Studio key came from)."""
    left = {name: value for name, value in flat_state(network_record) if value is not None}
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}

    def take(studio: str, edm: str, reshape=None) -> None:
        for leaf in ("weight", "bias"):
            value = left.pop(f"{edm}.{leaf}", None)
            if isinstance(value, torch.Tensor):
                out[f"{studio}.{leaf}"] = reshape(value) if reshape else value
                origin[f"{studio}.{leaf}"] = f"{edm}.{leaf}"

    size = network["image_shape"][1]
    take("image_proj", f"model.enc.{size}x{size}_conv")
    take("time_emb.lin1", "model.map_layer0")
    take("time_emb.lin2", "model.map_layer1")
    take("time_emb.aug_emb", "model.map_augment")
    for res, attn, edm in block_pairs(network):
        for theirs, ours in RES_LEAVES.items():
            take(f"{res}.{ours}", f"{edm}.{theirs}")
        if attn:
            take(f"{attn}.norm", f"{edm}.norm2")
            take(f"{attn}.projection", f"{edm}.qkv", _interleaved_qkv_to_heads)
            take(f"{attn}.output", f"{edm}.proj", _squeeze_1x1)
        for conv in ("conv0", "skip"):
            _check_box_filter(left.pop(f"{edm}.{conv}.resample_filter", None), f"{edm}.{conv}", path)
    take("norm", f"model.dec.{size}x{size}_aux_norm")
    take("final", f"model.dec.{size}x{size}_aux_conv")
    if left:
        raise CheckpointError(f"EDM pickle {path} holds {len(left)} weights the DDPM++ layout does not have (e.g. "
                              f"{next(iter(left))}); it is not a network of this layout.")
    return out, origin


def _squeeze_1x1(weight: torch.Tensor) -> torch.Tensor:
    return weight.reshape(weight.shape[0], -1) if weight.dim() == 4 else weight


def _interleaved_qkv_to_heads(value: torch.Tensor) -> torch.Tensor:
    """EDM's 1x1 qkv conv orders its 3C outputs channel by channel ([q, k, v] of channel 0, then 1, ...) for
    its one head; Studio's projection holds [q | k | v], each C wide."""
    value = _squeeze_1x1(value)
    if value.shape[0] % 3:
        return value        # the shape check names it
    rest = value.shape[1:]
    return value.reshape(-1, 3, *rest).transpose(0, 1).reshape(value.shape[0], *rest)


def _check_box_filter(value: Any, where: str, path: Path) -> None:
    if value is None:
        return
    box = torch.full((1, 1, 2, 2), 0.25)
    if not isinstance(value, torch.Tensor) or value.shape != box.shape or not torch.allclose(value.float(), box):
        raise CheckpointError(f"EDM pickle {path}: {where} resamples with a filter other than DDPM++'s 2x2 box, "
                              "which Studio's network does not have.")
