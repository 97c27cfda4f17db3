"""Checkpoints: atomic writes of ours, safe reads of ours and of the official DDAE format (ddae-spec 5).

Every read uses torch.load(weights_only=True): a checkpoint may only hold tensors and plain values.
"""

from __future__ import annotations

import errno
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..rundir import atomic_write, fsync_dir
from .config import load_config, parse_model_config
from .errors import CheckpointError, UserError
from .model import DDAEModel, build_model

FORMAT = "ddae-studio-checkpoint"
FORMAT_VERSION = 1
_OFFICIAL_EMA_PREFIX = "ema_model."
_OFFICIAL_PREFIXES = ("module.", "online_model.", "ema_model.", "nn_model.")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save through the run directory's one atomic write, then fsync the folder so the rename lasts too.

    A failure (a full disk, a kill) leaves any previous file at `path` untouched and no temp file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(path, lambda fh: torch.save(obj, fh), binary=True)
    except RuntimeError as exc:
        # torch's zip writer reports a short write (a full disk, a file size limit) as
        # "[enforce fail at inline_container.cc] unexpected pos"; callers handle OSErrors.
        raise OSError(errno.EIO, "the write was cut short", str(path)) from exc
    fsync_dir(path.parent)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """torch.load(weights_only=True), with every failure turned into one sentence."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist; check the path.")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():      # no refused class or function: bytes that are no pickle at all
            raise CheckpointError(f"Checkpoint {path} is damaged or not a PyTorch file (UnpicklingError); "
                                  "re-save or re-download it.") from None
        raise CheckpointError(f"Checkpoint {path} holds Python objects other than tensors and plain values, "
                              "so it was not loaded; save the state dicts only.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError, TypeError,
            AttributeError) as exc:     # junk bytes reach the unpickler's memo and stack as these
        raise CheckpointError(f"Checkpoint {path} is damaged or not a PyTorch file "
                              f"({exc.__class__.__name__}); re-save or re-download it.") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"Checkpoint {path} holds a {type(data).__name__}, not a dict of state dicts.")
    return data


def is_official(data: dict) -> bool:
    return "EMA" in data or "MODEL" in data


def _strip(state: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}


def _network_state(state: dict) -> dict[str, torch.Tensor]:
    """Peel known wrapper prefixes (`module.`, `online_model.`, `ema_model.`, `nn_model.`) off a flat state dict."""
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        stripped = True
        while stripped:
            stripped = False
            for prefix in _OFFICIAL_PREFIXES:
                if key.startswith(prefix):
                    key, stripped = key[len(prefix):], True
        out[key] = value
    return out


def official_state(data: dict, weights: str, path: Path) -> dict[str, torch.Tensor]:
    """The UNet state dict from an official checkpoint: EMA weights, or the raw `MODEL` weights."""
    if weights == "ema":
        ema = data.get("EMA")
        if not isinstance(ema, dict) or not any(k.startswith(_OFFICIAL_EMA_PREFIX) for k in ema):
            raise CheckpointError(f"Checkpoint {path} has no EMA weights; load its raw weights instead "
                                  "(--weights raw).")
        return _network_state(_strip(ema, _OFFICIAL_EMA_PREFIX))
    model = data.get("MODEL")
    if not isinstance(model, dict):
        raise CheckpointError(f"Checkpoint {path} has no MODEL (raw) weights; load its EMA weights instead.")
    return _network_state(model)


def _find_official_config(path: Path) -> Path | None:
    for candidate in (path.with_suffix(".yaml"), path.with_suffix(".yml"), path.parent / "config.yaml",
                      path.parent.parent / "config.yaml"):
        if candidate.is_file():
            return candidate
    return None


def load_into(model: DDAEModel, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load a UNet state dict strictly; an architecture mismatch becomes one sentence."""
    expected = model.net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        detail = []
        if wrong:
            k = wrong[0]
            detail.append(f"{k} is {tuple(state[k].shape)} but the config needs {tuple(expected[k].shape)}")
        if missing:
            detail.append(f"{len(missing)} weights missing (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unknown weights (e.g. {unexpected[0]})")
        raise CheckpointError(f"Checkpoint {path} is for a different architecture than its config "
                              f"({'; '.join(detail)}); pass the config it was trained with.")
    model.net.load_state_dict(state, strict=True)


def load_model(checkpoint_path: str | Path, config_path: str | Path | dict | None = None, weights: str = "ema",
               device: str | torch.device = "cpu") -> DDAEModel:
    """A model in eval mode from one of our checkpoints or an official one (EMA weights unless weights='raw').

    Official checkpoints carry no config: give `config_path`, or keep the YAML beside the checkpoint
    under the same name (model_800.yaml) or as config.yaml.
    """
    if weights not in ("ema", "raw"):
        raise UserError(f"weights must be 'ema' or 'raw' (got {weights!r}).")
    path = Path(checkpoint_path)
    data = read_checkpoint(path)
    if data.get("format") == FORMAT:
        config = load_config(config_path) if config_path is not None else data.get("config")
        state = data.get("ema" if weights == "ema" else "model")
        if not isinstance(config, dict) or not isinstance(state, dict):
            raise CheckpointError(f"Checkpoint {path} is missing its config or weights; it was not fully written.")
    elif is_official(data):
        if config_path is None:
            config_path = _find_official_config(path)
            if config_path is None:
                raise CheckpointError(f"Checkpoint {path} is in the official DDAE format, which carries no config; "
                                      "pass the YAML config it was trained with.")
        config = load_config(config_path)
        state = official_state(data, weights, path)
    elif data and all(isinstance(v, torch.Tensor) for v in data.values()):
        if config_path is None:
            raise CheckpointError(f"Checkpoint {path} is a bare state dict; pass the config it was trained with.")
        config = load_config(config_path)
        state = _network_state(data)
    else:
        raise CheckpointError(f"Checkpoint {path} is not a DDAE checkpoint (no MODEL/EMA or model/ema entries).")
    model = build_model(parse_model_config(config))
    load_into(model, state, path)
    check_finite(model, path)
    return model.to(device).eval()


def check_finite(model: DDAEModel, path: Path) -> None:
    """CheckpointError when a weight is NaN or infinite: such a model probes at chance and samples black."""
    if not bool(torch.stack([torch.isfinite(p).all() for p in model.net.state_dict().values()
                             if p.is_floating_point()]).all()):
        raise CheckpointError(f"Checkpoint {path} holds NaN or infinite weights (its training diverged); "
                              "use an earlier checkpoint of the run, or train again with a lower learning rate.")
