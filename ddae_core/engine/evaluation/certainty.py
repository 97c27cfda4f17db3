"""How sure a probe grid is: each cell's binomial interval, the chance band, colour levels no narrower than
the noise, which cell speaks for the grid, and whether the grid brackets its best noise level.

Pure arithmetic on accuracies (fractions 0..1) and counts; no torch, no Qt, so the app and the CLI share it.
A cell's accuracy is k right of n test images, a binomial proportion: its 95% Wilson interval is what a
second draw of n images could plausibly have measured.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from ...rundir import GRID, KNN_GRID, read_json_dict

Z95 = 1.959964          # two-sided 95% normal quantile
CHANCE_SIGMAS = 2.0     # a cell within chance + 2 sigma is indistinguishable from guessing

# Held-out selection (see selection_holdout): the share of the training split kept back to choose the best cell,
# and the fewest held-out images worth choosing on (fewer: the choice would be noise, so it is made on test).
HOLDOUT_FRACTION = 0.1
MIN_HOLDOUT = 500
SELECTED_ON_HELD_OUT = "held-out"
SELECTED_ON_TEST = "test"


def wilson_interval(accuracy: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (lo, hi) of a proportion measured on n trials; (0, 1) when n < 1."""
    if n < 1:
        return 0.0, 1.0
    p = min(1.0, max(0.0, float(accuracy)))
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def chance_level(classes: int) -> float:
    """1 / classes: what guessing scores."""
    return 1.0 / classes if classes > 0 else 0.0


def chance_ceiling(classes: int, n: int, sigmas: float = CHANCE_SIGMAS) -> float:
    """Chance + `sigmas` binomial standard deviations of a guesser's accuracy on n images."""
    c = chance_level(classes)
    return c + sigmas * math.sqrt(c * (1 - c) / n) if n > 0 else 1.0


def within_chance(accuracy: float, classes: int, n: int, sigmas: float = CHANCE_SIGMAS) -> bool:
    """True when `accuracy` on n images is no further above chance than guessing would often land."""
    return float(accuracy) <= chance_ceiling(classes, n, sigmas)


def fitted_levels(values: Iterable[float], n: int | None, marks: Iterable[float] = ()) -> tuple[float, float]:
    """Colour levels (lo, hi) spanning the values and marks, never narrower than a cell's 95% interval.

    Fitting the colours to 9.5-11.0% cells on 200 images would paint noise as structure: the span is widened,
    around its middle and inside 0..1, to the widest interval of the values (n unknown: 1 point).
    """
    values = [float(v) for v in values if math.isfinite(v)]
    spanned = values + [float(m) for m in marks if math.isfinite(m)]
    if not spanned:
        return 0.0, 1.0
    lo, hi = min(spanned), max(spanned)
    widths = [wilson_interval(v, n)[1] - wilson_interval(v, n)[0] for v in values] if n else []
    least = max(widths + [0.01])
    if hi - lo >= least:
        return lo, hi
    middle = (lo + hi) / 2
    lo, hi = middle - least / 2, middle + least / 2
    if lo < 0:
        lo, hi = 0.0, least
    if hi > 1:
        lo, hi = 1.0 - least, 1.0
    return max(0.0, lo), min(1.0, hi)


def read_grid(run_dir: Path) -> dict | None:
    """A probe run's grid.json, or None before the grid is saved (or when it cannot be read)."""
    return read_json_dict(Path(run_dir) / GRID)


def read_knn(run_dir: Path) -> dict | None:
    """A fast grid's k-NN cells (knn_grid.json, instant.py), or None before they are written or without them."""
    return read_json_dict(Path(run_dir) / KNN_GRID)


def grid_sample(grid: dict | None) -> tuple[int | None, int | None]:
    """(test images, classes) a grid.json's cells were measured with; None for what it does not say."""
    grid = grid or {}
    n, classes = grid.get("test_images"), grid.get("classes")
    return (int(n) if isinstance(n, int) and n > 0 else None,
            len(classes) if isinstance(classes, list) and classes else None)


# Which cell speaks for the grid.
def selection_holdout(train_images: int, requested: int | None) -> int:
    """How many training images to hold out for choosing the best cell (0: choose on the test images).

    requested None: HOLDOUT_FRACTION of the training split where that is at least MIN_HOLDOUT images
    (the split allows it), else none. An explicit number is kept when it leaves images to train on.
    """
    if requested is None:
        held = int(train_images * HOLDOUT_FRACTION)
        return held if held >= MIN_HOLDOUT else 0
    return int(requested) if 0 < int(requested) < train_images else 0


def selection_of(grid: dict) -> str:
    """How a grid.json chose its best cell: 'held-out' or 'test' (files from before the field: on test)."""
    selection = grid.get("selection") or {}
    return SELECTED_ON_HELD_OUT if selection.get("on") == SELECTED_ON_HELD_OUT else SELECTED_ON_TEST


def held_out_choice(grid: dict | None) -> tuple[int, str] | None:
    """(timestep, layer) a grid.json chose on held-out images, or None when its best is simply the test maximum."""
    best = (grid or {}).get("best") or {}
    if grid is None or selection_of(grid) != SELECTED_ON_HELD_OUT or "timestep" not in best:
        return None
    return int(best["timestep"]), str(best["layer"])


def selection_words(grid: dict) -> str:
    """'chosen on 1,000 held-out training images' or 'best on test', for a grid's headline."""
    if selection_of(grid) == SELECTED_ON_HELD_OUT:
        return f"chosen on {int((grid.get('selection') or {}).get('images', 0)):,} held-out training images"
    return "best on test"


# Does the grid bracket its best noise level?
def edge_of_range(timesteps: Sequence[int], best: int) -> str | None:
    """'largest' or 'smallest' when the best timestep is at that end of a grid of 2+ timesteps, else None."""
    ordered = sorted(int(t) for t in timesteps)
    if len(ordered) < 2 or int(best) not in ordered:
        return None
    if int(best) == ordered[-1]:
        return "largest"
    if int(best) == ordered[0]:
        return "smallest"
    return None


def next_timesteps(timesteps: Sequence[int], best: int, high: int | None = None, low: int = 1) -> list[int]:
    """Two noise levels to add beyond the edge the best cell sits on ([] when it is inside or at the limit).

    Upward the step is twice the grid's last spacing (1,11,...,101 best at 101 -> 121, 141); downward the
    grid's first spacing, halved if that would leave the range (best at 11 of 11,21,... -> 1).
    """
    ordered = sorted(int(t) for t in timesteps)
    edge = edge_of_range(ordered, best)
    if edge == "largest":
        step = 2 * (ordered[-1] - ordered[-2])
        out = [ordered[-1] + step, ordered[-1] + 2 * step]
        return [t for t in out if high is None or t <= high] or ([high] if high and high > ordered[-1] else [])
    if edge == "smallest":
        step = ordered[1] - ordered[0]
        out = sorted({max(low, ordered[0] - step), max(low, ordered[0] - 2 * step)})
        return [t for t in out if t < ordered[0]] or ([low] if ordered[0] > low else [])
    return []


def edge_note(timesteps: Sequence[int], best: int, high: int | None = None) -> str:
    """One sentence when the best timestep is at the edge of the grid (what to add next), else ''."""
    edge = edge_of_range(timesteps, best)
    if edge is None:
        return ""
    more = next_timesteps(timesteps, best, high)
    words = f"The best noise level, t={best}, is the {edge} probed, so the grid may not bracket the optimum"
    if more:
        return words + f"; add t={','.join(str(t) for t in more)} to see past it."
    return words + f" (t={best} is the {'highest' if edge == 'largest' else 'lowest'} the model has)."


# Classify inside what it knows.
def head_range_note(head_timesteps: Sequence[int], t: int) -> str:
    """A plain warning when t lies outside the probed heads' timesteps (naming the head used), else ''."""
    if not head_timesteps:
        return ""
    lo, hi = min(head_timesteps), max(head_timesteps)
    if lo <= int(t) <= hi:
        return ""
    nearest = lo if int(t) < lo else hi
    return (f"t={int(t)} is outside the heads' range (t={lo}..{hi}): the answer comes from the nearest head, "
            f"t={nearest}, which was never trained at this noise level; do not trust it.")


def true_class(path: str | Path, classes: Sequence[str]) -> str | None:
    """The class a file's folder names (e.g. test/cat/001.png -> 'cat'), or None when it names none."""
    folder = Path(path).parent.name.casefold()
    return next((c for c in classes if c.casefold() == folder), None)


def tally(answers: Iterable[tuple[str | None, str | None]]) -> tuple[int, int]:
    """(right, N) over (answer, true class) pairs whose true class is known."""
    known = [(a, truth) for a, truth in answers if truth is not None]
    return sum(a == truth for a, truth in known), len(known)
