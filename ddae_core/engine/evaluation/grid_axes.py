"""The axes of a probe grid: noise levels (timesteps) and layers, parsed from a form, a CLI option or a spec."""

from __future__ import annotations

from ..errors import ConfigError
from ..nets import dit
from ..nets.unet import tap_names

# Each family counts its noise levels its own way: DDPM's t is 1-indexed (0 is the clean image), EDM's is an index
# into its 18 sigmas, and DiT's t is 0-indexed as in the DiT code (its t = 0 already holds one step of noise; the
# schedule is diffusion.dit_alphabar). grid.json says which (`timestep_convention`).
TIMESTEP_CONVENTIONS = {
    "ddpm": "DDPM timesteps, 1-indexed (1..n_T; 0 is the clean image)",
    "edm": "EDM sigma indices (1..18)",
    "dit": "DiT timesteps, 0-indexed (0..n_T-1, as the DiT code)",
}
_RANGE_WORDS = {"ddpm": "DDPM timesteps", "edm": "EDM sigma indices", "dit": "DiT timesteps, 0-indexed"}
DEFAULT_TIMESTEPS = {"ddpm": [1, 11, 21], "edm": [3, 4, 5], "dit": [41, 81, 121, 161, 201]}


def timestep_range(model_cfg) -> tuple[int, int]:
    """(lowest, highest) timestep a probe may name for this model."""
    if model_cfg.framework == "ddpm":
        return 1, int(model_cfg.diffusion["n_T"])
    if model_cfg.framework == "dit":
        return 0, int(model_cfg.diffusion["n_T"]) - 1
    return 1, 18


def layer_names(model_cfg) -> list[str]:
    """The network's taps in order, from its config (nothing is built)."""
    if model_cfg.framework == "dit":
        return dit.tap_names(int(model_cfg.network["depth"]))
    return tap_names(model_cfg.network)


def parse_timesteps(value, model_cfg, field: str = "timesteps") -> list[int]:
    """'1,11,21' or a list -> ints in the framework's range (timestep_range); default: the paper's grid."""
    if value in (None, "", []):
        return list(DEFAULT_TIMESTEPS[model_cfg.framework])
    items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else [value]
    low, high = timestep_range(model_cfg)
    out = []
    for item in items:
        try:
            t = int(str(item).strip())
        except ValueError:
            raise ConfigError(field, f"{item!r} is not a whole number") from None
        if not low <= t <= high:
            raise ConfigError(field, f"{t} is outside {low}..{high} ({_RANGE_WORDS[model_cfg.framework]})")
        out.append(t)
    return sorted(dict.fromkeys(out))


def parse_layers(value, model_cfg, field: str = "layers") -> list[str]:
    """'all' (the decoder taps out_k, the official grid; a DiT's every block), 'every' (enc_k, mid and out_k),
    or a list."""
    names = layer_names(model_cfg)
    if value in (None, "", "all"):
        return [n for n in names if n.startswith(("out_", "layer-"))]
    if value == "every":
        return names
    items = [s.strip() for s in value.split(",")] if isinstance(value, str) else [str(s) for s in value]
    unknown = [s for s in items if s not in names]
    if unknown or not items:
        raise ConfigError(field, f"{', '.join(unknown) or 'nothing'} is not a layer of this network "
                                 f"(it has {names[0]}..{names[-1]})")
    return [n for n in names if n in items]
