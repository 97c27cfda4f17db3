"""The run/series palette: a stable colour per key, shared by every view.

A key (run id, series name) always maps to the same colour, in every panel and every session,
because the slot comes from a CRC of the key rather than Python's per-process salted hash().
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from PySide6.QtGui import QColor

# Tableau 10, then ColorBrewer Dark2 and a few deep tones: every entry stays readable as a thin line
# on white (no pastel companions), and neighbours differ in hue.
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e",
    "#e6ab02", "#a6761d", "#393b79", "#843c39", "#3182bd",
)


def _slot(key: str) -> int:
    return zlib.crc32(key.encode("utf-8")) % len(PALETTE)


def color_for(key: str) -> QColor:
    """The stable colour of `key` (the same in every view and session)."""
    return QColor(PALETTE[_slot(key)])


def colors_for(keys: Iterable[str]) -> dict[str, QColor]:
    """Stable colours for a set of keys shown together, with no two alike while the palette lasts.

    Each key takes its own slot when free, else the next free one, in sorted key order so the
    result does not depend on the order the caller lists them.
    """
    taken: set[int] = set()
    result: dict[str, QColor] = {}
    for key in sorted(set(keys)):
        slot = _slot(key)
        if len(taken) < len(PALETTE):
            while slot in taken:
                slot = (slot + 1) % len(PALETTE)
        taken.add(slot)
        result[key] = QColor(PALETTE[slot])
    return result


def faded(color: QColor, alpha: int = 70) -> QColor:
    """The same hue with `alpha` (0..255): the raw curve drawn behind a smoothed one."""
    out = QColor(color)
    out.setAlpha(alpha)
    return out


def text_color_on(background: QColor) -> QColor:
    """Black or white, whichever reads better on `background` (relative luminance, WCAG)."""
    def channel(c: float) -> float:
        c /= 255.0
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    lum = 0.2126 * channel(background.red()) + 0.7152 * channel(background.green()) \
        + 0.0722 * channel(background.blue())
    return QColor("black") if lum > 0.179 else QColor("white")
