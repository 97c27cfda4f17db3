"""Models trained elsewhere, read without running their code: the format of a source, its run config, its weights.

Formats: `official` (a DDAE `.pth`, read by engine.checkpoint), `diffusers` (a UNet2DModel folder of the DDPM
layout), `edm` (an NVlabs EDM network pickle) and `dit` (a DiT `.pt` of the DiT code, with its VAE folder).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..config import parse_model_config
from ..errors import CheckpointError, ConfigError, UserError
from ..nets import UNet
from ..nets.dit import DiT
from . import diffusers_ddpm, dit, edm_network

FORMATS = ("official", "diffusers", "edm", "dit")
# Files a dropped path may be a model in (a diffusers model is its folder); anything else is images to classify.
MODEL_SUFFIXES = (".pth", ".pt", ".pkl")
FORMAT_WORDS = {
    "official": "an official DDAE checkpoint: give the YAML config it was trained with",
    "diffusers": "a diffusers UNet2DModel folder (its config and scheduler come with it)",
    "edm": "an NVlabs EDM network pickle, read without running the code it carries",
    "dit": "a DiT checkpoint of the DiT code (CC-BY-NC, user-supplied): give the VAE folder of its latents",
}


def looks_like_model(path: Path) -> bool:
    """Whether a dropped or chosen path is a model to import (not an image to classify)."""
    return diffusers_ddpm.is_diffusers_folder(path) or (path.is_file() and path.suffix.lower() in MODEL_SUFFIXES)


def detect_format(path: Path) -> str:
    """The format a path holds, from its shape on disk: a diffusers folder, an EDM `.pkl`, else official."""
    if diffusers_ddpm.is_diffusers_folder(path):
        return "diffusers"
    if path.suffix == ".pkl":
        return "edm"
    if path.suffix == ".pt" and path.name.startswith("DiT-"):
        return "dit"
    return "official"


def weights_file(path: Path, fmt: str) -> Path:
    """The one file whose bytes are the model (hashed into the run's options)."""
    return diffusers_ddpm.find_files(path).weights if fmt == "diffusers" else path


def source_config(path: Path, fmt: str) -> dict:
    """The run config a diffusers folder or EDM pickle describes, checked against its weights file's size
    before anything is allocated."""
    if fmt == "diffusers":
        config = diffusers_ddpm.studio_config(diffusers_ddpm.find_files(path))
    elif fmt == "edm":
        config = edm_network.studio_config(path)
    else:
        raise UserError(f"Format {fmt!r} carries no config of its own; pass --config.")
    check_size(config, weights_file(path, fmt))
    return config


def expected_shapes(config: dict, weights: Path) -> dict[str, torch.Size]:
    """The Studio network's state dict shapes for a config, from a network built on the meta device (nothing
    is allocated, so an absurd config costs nothing)."""
    try:
        parsed = parse_model_config(config)
    except ConfigError as exc:
        raise CheckpointError(f"The config of {weights.parent} does not fit Studio's network ({exc}).") from None
    with torch.device("meta"):
        net = DiT(**parsed.network) if parsed.framework == "dit" else UNet(**parsed.network)
    return {k: v.shape for k, v in net.state_dict().items()}


def check_size(config: dict, weights: Path) -> None:
    """Refuse a config whose network needs more bytes (at 2 bytes a weight, fp16) than its weights file holds."""
    count = sum(shape.numel() for shape in expected_shapes(config, weights).values())
    if 2 * count > weights.stat().st_size:
        raise CheckpointError(f"The config of {weights.parent} describes a network of {count:,} weights, more than "
                              f"its {weights.stat().st_size:,}-byte weights file {weights.name} can hold; the config "
                              "or the file is wrong.")


def network_of(config: dict) -> dict:
    return parse_model_config(config).network


def check_shapes(state: dict[str, torch.Tensor], origin: dict[str, str], expected: dict[str, torch.Size],
                 weights: Path) -> None:
    """One sentence naming the source's own key when a weight's shape is not the one its config implies."""
    for key, shape in expected.items():
        if key in state and state[key].shape != shape:
            raise CheckpointError(f"Weights file {weights}: {origin.get(key, key)} is {tuple(state[key].shape)} but "
                                  f"its config needs {tuple(shape)}; the weights and the config do not belong "
                                  "together.")


def source_state(path: Path, fmt: str, config: dict) -> dict[str, torch.Tensor]:
    """The network's weights under Studio's state dict keys."""
    if fmt == "diffusers":
        files = diffusers_ddpm.find_files(path)
        network = network_of(config)
        state, origin = diffusers_ddpm.convert_state(diffusers_ddpm.read_weights(files.weights), network,
                                                     files.weights)
        check_shapes(state, origin, expected_shapes(config, files.weights), files.weights)
        return state
    if fmt == "edm":
        state, origin = edm_network.convert_state(edm_network.read_network(path), network_of(config), path)
        check_shapes(state, origin, expected_shapes(config, path), path)
        return state
    if fmt == "dit":
        state, origin = dit.convert_state(dit.read_state(path))
        check_shapes(state, origin, expected_shapes(config, path), path)
        return state
    raise UserError(f"Format {fmt!r} is read by engine.checkpoint, not here.")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def licence(path: Path) -> str | None:
    """The `license:` of a model card (README.md front matter) in the folder, if there is one."""
    for folder in (path, path.parent) if path.is_dir() else (path.parent,):
        card = folder / "README.md"
        if card.is_file():
            for line in card.read_text(errors="replace").splitlines()[:40]:
                if line.startswith("license:"):
                    return line.partition(":")[2].strip() or None
    return None


__all__ = ["FORMATS", "detect_format", "licence", "sha256", "source_config", "source_state", "weights_file"]
