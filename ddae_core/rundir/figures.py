"""How a stored fraction reads (one rounding for the CLI, the app, the benches and the README), and a duration.

Accuracies are stored as float32 fractions of a test set (807 of 2,000 is 0.4035, stored as
0.40349999...). Printing `100 * x` with `:.1f` made that 40.3% in one place and, after float64
arithmetic, 40.4% in another. Here a fraction is first snapped to six decimals (finer than any test
set we score, coarser than float32's noise), then rounded half up, in decimal: 0.4035 reads 40.4%
everywhere, and 0.3225 reads 32.3%.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal


def _in_points(fraction: float, places: int) -> Decimal:
    snapped = Decimal(repr(round(float(fraction), 6)))
    return (100 * snapped).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def percent(fraction: float | None, places: int = 1, missing: str = "-") -> str:
    """0.4035 -> '40.4%'; None -> `missing`."""
    return missing if fraction is None else f"{_in_points(fraction, places)}%"


def points(difference: float | None, places: int = 1, missing: str = "-") -> str:
    """A difference of two fractions in percentage points, signed: 0.0815 -> '+8.2', -0.058 -> '-5.8'."""
    if difference is None:
        return missing
    value = _in_points(difference, places)
    return f"{'-' if value < 0 else '+'}{value.copy_abs()}"


def clock(seconds: float | None, missing: str = "-") -> str:
    """A duration as 1:02:05, or 3:20 under an hour; `missing` for None, a negative or an endless one."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return missing
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
