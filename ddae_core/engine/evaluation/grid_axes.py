"""The axes of a probe grid: noise levels (timesteps) and layers, parsed from a form, a CLI option or a spec; and
where a grid's rows and columns sit on the shared axes (log-SNR, relative depth) of every family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import parse_model_config
from ..errors import ConfigError
from ..nets import dit
from ..nets.unet import tap_names
from .noise_axis import NoiseAxis, axis_of, relative_depths

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


def tap_order(model_cfg) -> list[str] | None:
    """Every tap of the network in network order (relative depth counts in it); None where it is not known."""
    if model_cfg.framework in ("ddpm", "edm"):
        return tap_names(model_cfg.network)
    depth = model_cfg.network.get("depth")
    return [f"layer-{i}" for i in range(int(depth))] if depth else None


def noise_axis_json(model_cfg) -> dict[str, Any] | None:
    """grid.json's `noise_axis`: the model's schedule, enough to compute every row's log-SNR later."""
    axis = axis_of(model_cfg.framework, model_cfg.diffusion)
    return axis.to_json() if axis else None


@dataclass(frozen=True)
class GridPlacement:
    """Where a grid sits on the shared axes: its noise schedule (None: index only) and its network's tap order."""

    noise: NoiseAxis | None
    taps: tuple[str, ...] | None

    def log_snrs(self, timesteps) -> dict[int, float]:
        """{timestep: log-SNR} ({} when index only, or for an index outside the schedule)."""
        if self.noise is None:
            return {}
        try:
            return self.noise.log_snrs(timesteps)
        except ValueError:
            return {}

    def depths(self, layers) -> tuple[dict[str, float], str]:
        """({layer: relative depth}, basis 'network' or 'grid'), see noise_axis.relative_depths."""
        return relative_depths(list(layers), self.taps)


def placement_of(grid: dict | None, config: dict | None) -> GridPlacement:
    """A grid's placement from its grid.json (`noise_axis`, `tap_order`), else from the model config of its run's
    spec (grids saved before these fields, or still running), else index only."""
    grid = grid or {}
    noise = NoiseAxis.from_json(grid.get("noise_axis"))
    taps = grid.get("tap_order") if isinstance(grid.get("tap_order"), list) else None
    if (noise is None or taps is None) and isinstance(config, dict):
        try:
            cfg = parse_model_config(config)
        except (ConfigError, TypeError, ValueError, KeyError):      # a hand-edited spec: index only
            cfg = None
        if cfg is not None and (not grid.get("framework") or grid.get("framework") == cfg.framework):
            noise = noise or axis_of(cfg.framework, cfg.diffusion)
            taps = taps or tap_order(cfg)
    return GridPlacement(noise, tuple(taps) if taps else None)


def spec_config(*specs: dict | None) -> dict | None:
    """The model config a grid's run used: that of the first spec that has one (a probe's own, then its parent's)."""
    return next((s["config"] for s in specs if isinstance(s, dict) and isinstance(s.get("config"), dict)), None)


# A grid on the shared axes: one slice of it, as points (x, accuracy, timestep, layer) sorted by x.
Cells = dict[tuple[int, str], float]


def along_noise(cells: Cells, log_snrs: dict[int, float], depths: dict[str, float], depth: float | None
                ) -> list[tuple[float, float, int, str]]:
    """Accuracy against log-SNR at the layer nearest `depth` (ties: the shallower), or with None the best layer
    of each noise level; rows without log-SNR and layers without a depth are left out."""
    points = []
    for t, x in log_snrs.items():
        row = {layer: acc for (tt, layer), acc in cells.items() if tt == t and layer in depths}
        if not row:
            continue
        if depth is None:
            layer = max(row, key=lambda name: (row[name], -depths[name]))
        else:
            layer = min(depths, key=lambda name: (abs(depths[name] - depth), depths[name]))
            if layer not in row:
                continue
        points.append((x, row[layer], t, layer))
    return sorted(points)


def along_depth(cells: Cells, log_snrs: dict[int, float], depths: dict[str, float], log_snr: float | None
                ) -> list[tuple[float, float, int, str]]:
    """Accuracy against relative depth at the noise level nearest `log_snr`, or with None at the grid's best
    noise level (the row of its best cell)."""
    known = {key: acc for key, acc in cells.items() if key[0] in log_snrs and key[1] in depths}
    if not known:
        return []
    if log_snr is None:
        t = max(known, key=lambda key: known[key])[0]
    else:
        t = min(log_snrs, key=lambda s: (abs(log_snrs[s] - log_snr), s))
    return sorted((depths[layer], acc, tt, layer) for (tt, layer), acc in known.items() if tt == t)
