"""A DiT checkpoint of the DiT code (facebookresearch/DiT) and the VAE folder of its latent space, as a run config.

The public `DiT-XL-2-256x256.pt` is a bare state dict in the layout nets/dit.py keeps; a checkpoint of DiT's
own train.py holds it under `ema` (and its arguments as a Python object, which a weights-only read refuses:
save its `ema` entry alone). The architecture is read from the weights' shapes; the number of heads, which
no shape holds, is the DiT code's for its configs (XL, L, B, S) and otherwise must be given in `--config`
(`network: {num_heads: N}`), which may set any other field of the config too.

DiT's code and weights are CC-BY-NC: the user supplies the file; nothing of DiT's code is part of Studio.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ..checkpoint import read_checkpoint
from ..errors import CheckpointError
from ..latents.vae import read_vae_config, vae_files
from ..nets.dit import SIZES

PUBLIC_FILE = "DiT-XL-2-256x256.pt"
PUBLIC_URL = "https://dl.fbaipublicfiles.com/DiT/models/DiT-XL-2-256x256.pt"
LICENCE = "CC-BY-NC-4.0 (DiT's weights; supplied by the user)"
EXPECTED = (f"a DiT state dict such as {PUBLIC_FILE}, published by facebookresearch/DiT at {PUBLIC_URL} "
            "under CC-BY-NC (download it yourself)")
# The DDAE probe's defaults (FutureXiang/ddae DiT/linear.py): block 13 at t = 121 (CIFAR-10) or 81 (Tiny-ImageNet).
PROBE_TIMESTEPS = {"cifar10": 121, "tiny-imagenet": 81}
PROBE_LAYER = "layer-13"


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The DiT weights of a `.pt` (bare, or under `ema`), read weights-only; one sentence when it is not one."""
    if not path.is_file():
        raise CheckpointError(f"DiT checkpoint {path} does not exist; give {EXPECTED}.")
    try:
        data = read_checkpoint(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{str(exc).rstrip('.')}; a DiT import expects {EXPECTED}.") from None
    if isinstance(data.get("ema"), dict):
        data = data["ema"]
    state = {k.removeprefix("module."): v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if "x_embedder.proj.weight" not in state or "pos_embed" not in state or "blocks.0.attn.qkv.weight" not in state:
        raise CheckpointError(f"{path} is not a DiT checkpoint (it has no x_embedder, pos_embed or blocks weights); "
                              f"give {EXPECTED}.")
    return state


def network_of(state: dict[str, torch.Tensor], path: Path) -> dict:
    """The DiT code's constructor arguments that the weights' shapes imply (num_heads: the code's configs')."""
    hidden, in_channels, patch, _ = state["x_embedder.proj.weight"].shape
    tokens = state["pos_embed"].shape[1]
    grid = round(tokens ** 0.5)
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    out = state["final_layer.linear.weight"].shape[0] // (patch * patch)
    if grid * grid != tokens or out not in (in_channels, 2 * in_channels):
        raise CheckpointError(f"{path} has DiT weights of shapes no DiT config makes; give {EXPECTED}.")
    network = {"input_size": grid * patch, "patch_size": patch, "in_channels": in_channels, "hidden_size": hidden,
               "depth": depth, "mlp_ratio": state["blocks.0.mlp.fc1.weight"].shape[0] / hidden,
               "class_dropout_prob": 0.1, "num_classes": state["y_embedder.embedding_table.weight"].shape[0] - 1,
               "learn_sigma": out == 2 * in_channels}
    heads = next((h for d, w, h in SIZES.values() if (d, w) == (depth, hidden)), None)
    if heads is not None:
        network["num_heads"] = heads
    return network


def vae_section(folder: str | Path) -> dict:
    """The config's `vae`: the folder (absolute) and its downsampling, from its config.json (diffusers not needed)."""
    config_path, _ = vae_files(folder)
    config = read_vae_config(config_path)
    levels = config.get("block_out_channels")
    if not isinstance(levels, list) or not levels:
        raise CheckpointError(f"{config_path} names no block_out_channels; give the folder of an AutoencoderKL.")
    return {"folder": str(config_path.parent.resolve()), "downsample": 2 ** (len(levels) - 1)}


def studio_config(path: Path, vae_folder: str | Path | None, overrides: dict | None = None,
                  dataset: str | None = None) -> dict:
    """The run config of a DiT checkpoint and its VAE folder, with `overrides` (a --config mapping) over it."""
    if vae_folder is None:
        raise CheckpointError("A DiT import needs its VAE folder (--vae DIR, or the VAE field of the import dialog): "
                              "the folder of a diffusers AutoencoderKL (the official code uses "
                              "stabilityai/sd-vae-ft-mse).")
    network = network_of(read_state(path), path)
    timestep = PROBE_TIMESTEPS.get(str(dataset or "").split(":")[0], PROBE_TIMESTEPS["cifar10"])
    config: dict = {"model_type": "DiT", "network": network, "diffusion": {"n_T": 1000, "betas": [1e-4, 0.02]},
                    "vae": vae_section(vae_folder), "linear": {"timestep": timestep}}
    if network["depth"] > 13:
        config["linear"]["blockname"] = PROBE_LAYER
    for key, value in (overrides or {}).items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and isinstance(config.get(key), dict) \
            else value
    if "num_heads" not in config["network"]:
        raise CheckpointError(f"{path} is a DiT of depth {network['depth']} and width {network['hidden_size']}, "
                              "not one of the DiT code's configs, and no weight says its number of heads; pass "
                              "--config with `network: {num_heads: N}`.")
    json.dumps(config)      # plain values only: it goes into spec.yaml
    return config


def convert_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Studio's DiT keeps the DiT code's keys: (the weights in float32, each key's origin)."""
    return {k: v.float() for k, v in state.items()}, {k: k for k in state}
