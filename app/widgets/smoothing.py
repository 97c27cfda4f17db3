"""TensorBoard's debiased exponential moving average, vectorised (no Python loop per point).

TensorBoard smooths a curve as
    last = last * w + (1 - w) * value;  count += 1;  shown = last / (1 - w ** count)
over finite values only (NaN/inf are shown as they are and do not advance the average). The
division removes the bias towards the initial 0, so the first points are not pulled to zero.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

_EXP_SPAN = 300.0       # w**-k stays below e**300 inside a block: no overflow for |values| < 1e170
_NEGLIGIBLE = 37.0      # w**k < e**-37 ~ 1e-16: terms further back than this do not change a float64


class EmaState(NamedTuple):
    last: float = 0.0   # the undebiased average after the last finite value
    count: int = 0      # finite values averaged so far


def _ema_blocks(x: np.ndarray, w: float, carry: float) -> np.ndarray:
    """e_j = w * e_{j-1} + (1 - w) * x_j from e_{-1} = carry, in blocks short enough not to overflow.

    Inside a block, e_j = w**j * (w * carry + (1 - w) * cumsum(x_k / w**k)_j).
    """
    block = max(1, min(len(x), int(_EXP_SPAN / -math.log(w))))
    powers = w ** np.arange(block, dtype=np.float64)
    out = np.empty_like(x)
    for start in range(0, len(x), block):
        chunk = x[start:start + block]
        p = powers[:len(chunk)]
        seg = np.cumsum(chunk / p)
        seg *= 1.0 - w
        seg += w * carry
        seg *= p
        out[start:start + block] = seg
        carry = float(seg[-1])
    return out


def _ema_doubling(x: np.ndarray, w: float, carry: float) -> np.ndarray:
    """The same recurrence by prefix doubling, stopping once w**d is negligible (fast for small w)."""
    out = x * (1.0 - w)
    out[0] += w * carry
    span, factor = 1, w
    while span < len(out) and factor > 1e-17:
        out[span:] += factor * out[:-span]
        span *= 2
        factor *= factor
    return out


START = EmaState()


def ema(values: np.ndarray, weight: float, state: EmaState = START) -> tuple[np.ndarray, EmaState]:
    """The debiased EMA of `values` continuing from `state`; returns (smoothed, new state).

    weight: 0 (no smoothing) .. 0.999. Non-finite values are passed through.
    """
    values = np.asarray(values, dtype=np.float64)
    if weight <= 0.0 or len(values) == 0:
        finite = values[np.isfinite(values)]
        last = float(finite[-1]) if len(finite) else state.last
        return values.copy(), EmaState(last, state.count + len(finite))
    w = float(weight)
    mask = np.isfinite(values)
    all_finite = bool(mask.all())
    x = values if all_finite else values[mask]
    if len(x) == 0:
        return values.copy(), state
    # Blocks are cheap when long (w near 1); doubling when few terms matter (small w).
    undebiased = (_ema_blocks(x, w, state.last) if -math.log(w) * 1000 < _EXP_SPAN
                  else _ema_doubling(x, w, state.last))
    new_state = EmaState(float(undebiased[-1]), state.count + len(x))
    smoothed = undebiased
    # Debias only where w**count is not yet negligible.
    horizon = int(_NEGLIGIBLE / -math.log(w)) + 1 - state.count
    if horizon > 0:
        n = min(horizon, len(x))
        counts = np.arange(state.count + 1, state.count + n + 1, dtype=np.float64)
        smoothed[:n] /= 1.0 - np.power(w, counts)
    if all_finite:
        return smoothed, new_state
    out = values.copy()
    out[mask] = smoothed
    return out, new_state


def ema_reference(values, weight: float) -> list[float]:
    """TensorBoard's loop, point by point: for tests and documentation only."""
    last, count, out = 0.0, 0, []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        count += 1
        out.append(last / (1 - weight ** count) if weight > 0 else last)
    return out
