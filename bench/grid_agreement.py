"""How far two probe grids over the same cells agree: the fast protocol's grid against the official one's.

Whole-grid, not best cell against best cell: the mean and largest |difference| over every cell (points),
Spearman's rank correlation over the cells (does the fast grid order layers and noise levels as the
official one does?), and where each grid's best cell lies, with how many noise levels and layers apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ddae_core.engine.evaluation.report import best_cell

Cells = Mapping[int, Mapping[str, float]]        # {timestep: {layer: accuracy in [0, 1]}}

# The goals the fast protocol is held to (issue 21): mean |cell diff| <= 1 point, Spearman >= 0.9, best cells
# at most one noise level and one layer apart.
GOAL_MEAN_DIFF, GOAL_RANK_CORRELATION, GOAL_BEST_APART = 1.0, 0.9, 1


@dataclass(frozen=True)
class Agreement:
    mean_diff: float                  # points (percent of test images), over every cell both grids have
    max_diff: float                   # points
    rank_correlation: float           # Spearman over the cells; nan when either grid is constant
    best_official: tuple[int, str]    # (timestep, layer)
    best_fast: tuple[int, str]
    best_apart: tuple[int, int]       # (noise levels, layers) between the two best cells, in grid order
    cells: int

    def meets_goals(self) -> bool:
        return (self.mean_diff <= GOAL_MEAN_DIFF and self.rank_correlation >= GOAL_RANK_CORRELATION
                and max(self.best_apart) <= GOAL_BEST_APART)


def ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank (as Spearman's rho needs)."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    result = np.empty(len(values))
    result[order] = np.arange(len(values))
    for value in np.unique(values):
        tied = values == value
        if tied.sum() > 1:
            result[tied] = result[tied].mean()
    return result


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's over the ranks (nan if either side has one value only)."""
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def grid_agreement(timesteps: Sequence[int], layers: Sequence[str], official: Cells, fast: Cells) -> Agreement:
    """Agreement of `fast` with `official` over the cells of (timesteps x layers) that both grids have."""
    pairs = [(official[t][layer], fast[t][layer]) for t in timesteps for layer in layers
             if layer in official.get(t, {}) and layer in fast.get(t, {})]
    if not pairs:
        raise ValueError("the two grids have no cell in common")
    off, fst = (np.array(side, dtype=float) for side in zip(*pairs))
    diff = 100 * np.abs(off - fst)
    best_off, best_fast = best_cell(timesteps, layers, official), best_cell(timesteps, layers, fast)
    assert best_off is not None and best_fast is not None      # both grids have cells (pairs is not empty)
    apart = (abs(list(timesteps).index(best_off[0]) - list(timesteps).index(best_fast[0])),
             abs(list(layers).index(best_off[1]) - list(layers).index(best_fast[1])))
    return Agreement(mean_diff=float(diff.mean()), max_diff=float(diff.max()), rank_correlation=spearman(off, fst),
                     best_official=best_off[:2], best_fast=best_fast[:2], best_apart=apart, cells=len(pairs))


def agreement_line(name: str, speedup: float, agreement: Agreement) -> str:
    """`probe grid (NAME): speedup Nx, mean |cell diff| D points, max M points, rank correlation R, best cell
    official (t=T, LAYER) fast (t=T, LAYER)`."""
    (t_off, l_off), (t_fast, l_fast) = agreement.best_official, agreement.best_fast
    return (f"probe grid ({name}): speedup {speedup:.1f}x, mean |cell diff| {agreement.mean_diff:.2f} points, "
            f"max {agreement.max_diff:.2f} points, rank correlation {agreement.rank_correlation:.3f}, "
            f"best cell official (t={t_off}, {l_off}) fast (t={t_fast}, {l_fast})")
