"""The axes of a probe grid: noise levels (timesteps) and layers, parsed from a form, a CLI option or a spec."""

from __future__ import annotations

from ..errors import ConfigError
from ..nets.unet import tap_names


def parse_timesteps(value, model_cfg, field: str = "timesteps") -> list[int]:
    """'1,11,21' or a list -> ints in the framework's range (DDPM 1..n_T, EDM 1..18); default: the paper's grid."""
    if value in (None, "", []):
        return [1, 11, 21] if model_cfg.framework == "ddpm" else [3, 4, 5]
    items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else [value]
    high = model_cfg.diffusion["n_T"] if model_cfg.framework == "ddpm" else 18
    out = []
    for item in items:
        try:
            t = int(str(item).strip())
        except ValueError:
            raise ConfigError(field, f"{item!r} is not a whole number") from None
        if not 1 <= t <= high:
            what = "DDPM timesteps" if model_cfg.framework == "ddpm" else "EDM sigma indices"
            raise ConfigError(field, f"{t} is outside 1..{high} ({what})")
        out.append(t)
    return sorted(dict.fromkeys(out))


def parse_layers(value, model_cfg, field: str = "layers") -> list[str]:
    """'all' (the decoder taps out_k, the official grid), 'every' (enc_k, mid and out_k), or a list."""
    names = tap_names(model_cfg.network)
    if value in (None, "", "all"):
        return [n for n in names if n.startswith("out_")]
    if value == "every":
        return names
    items = [s.strip() for s in value.split(",")] if isinstance(value, str) else [str(s) for s in value]
    unknown = [s for s in items if s not in names]
    if unknown or not items:
        raise ConfigError(field, f"{', '.join(unknown) or 'nothing'} is not a layer of this network "
                                 f"(it has {names[0]}..{names[-1]})")
    return [n for n in names if n in items]
