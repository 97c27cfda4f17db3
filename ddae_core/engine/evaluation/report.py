"""Plain-text presentation of evaluation results (the CLI's tables)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..diffusion import EDM


def timestep_labels(model, timesteps: Sequence[int]) -> dict[int, str]:
    """Row labels: `t=11` for DDPM, `4 (sigma=0.0599)` for EDM indices."""
    if isinstance(model.framework, EDM):
        return {t: f"{t} (sigma={model.framework.sigma(t):.4g})" for t in timesteps}
    return {t: f"t={t}" for t in timesteps}


def best_cell(timesteps: Sequence[int], layers: Sequence[str], cells: Mapping[int, Mapping[str, float]]
              ) -> tuple[int, str, float] | None:
    """The highest-accuracy cell; ties go to the lower noise level, then the earlier layer."""
    best = None
    for t in timesteps:
        for name in layers:
            acc = cells.get(t, {}).get(name)
            if acc is not None and (best is None or acc > best[2]):
                best = (t, name, acc)
    return best


def format_grid(timesteps: Sequence[int], layers: Sequence[str], cells: Mapping[int, Mapping[str, float]],
                labels: Mapping[int, str] | None = None) -> str:
    """Accuracy (%) table: rows timesteps, columns layers in network order; the best cell starred, gaps as '-'."""
    labels = labels or {t: f"t={t}" for t in timesteps}
    best = best_cell(timesteps, layers, cells)
    row_head = max([len(labels[t]) for t in timesteps] + [8])
    width = max([len(name) for name in layers] + [6]) + 1
    lines = [" " * row_head + "".join(f"{name:>{width}}" for name in layers)]
    for t in timesteps:
        row = cells.get(t, {})
        text = []
        for name in layers:
            if name in row:
                mark = "*" if best and best[:2] == (t, name) else " "
                text.append(f"{100 * row[name]:>{width - 1}.1f}{mark}")
            else:
                text.append(f"{'-':>{width - 1}} ")
        lines.append(f"{labels[t]:<{row_head}}" + "".join(text))
    return "\n".join(lines)
