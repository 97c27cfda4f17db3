"""A grid of values for one setting, as a form field or `ddae train --grid KEY=VALUES` writes it.

`1000, 512, 256, 64` is a list; `1..4` the whole numbers 1 to 4; `1e-4..1e-3 x4 log` four values evenly
spaced on a log scale (`x4` alone: evenly spaced). A list may mix both: `64, 256..1024 x3 log`. A grid is
the product of its axes (the first axis outermost), times a number of seeds. Parsing is plain Python,
shared by the CLI and the launch forms, so the same text gives the same runs from either; a bad part is
named in one sentence (ConfigError naming the setting).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

MAX_RUNS = 1000               # a grid larger than this is a typo (1..100000), not a sweep anyone queues
SIGNIFICANT = 4               # a spaced value keeps this many digits: 2.154e-4, not 0.00021544346900318823

_RANGE = re.compile(r"^(?P<lo>[^.\s][^\s]*?)\s*\.\.\s*(?P<hi>[^\s]+?)(?:\s+x\s*(?P<n>\S+?))?(?:\s+(?P<log>log))?$",
                    re.IGNORECASE)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
HOW = "write values separated by commas (1000, 256, 64) or a range (1..4, 1e-4..1e-3 x4 log)"


@dataclass(frozen=True)
class Axis:
    """One setting of a grid and its values, in the order given. `key`: an option name (lr, steps) or
    a dotted key of the config (diffusion.n_T)."""

    key: str
    values: tuple

    @property
    def label(self) -> str:
        """The key's last part, as run names show it: n_T for diffusion.n_T."""
        return self.key.rpartition(".")[2]


def is_grid(text: Any) -> bool:
    """Whether a field's text asks for several values (a comma or a range) rather than one."""
    return isinstance(text, str) and ("," in text or ".." in text)


def parse_values(key: str, text: str, kind: str = "auto", choices: Sequence = ()) -> tuple:
    """The values `text` lists for `key`, in order, duplicates dropped.

    kind: int, float, choice (one of `choices`, matched by value or by its words) or auto (a whole number
    where written as one, else a number, else the word as written: a config key's type is its own check).
    """
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise ConfigError(key, f"has no values; {HOW}")
    values: list = []
    for part in parts:
        if not part:
            raise ConfigError(key, f"has an empty item in {text.strip()!r}; {HOW}")
        if ".." in part:
            values += _range(key, part, kind)
        else:
            values.append(_one(key, part, kind, choices))
    unique = tuple(dict.fromkeys(values))
    if len(unique) > MAX_RUNS:
        raise ConfigError(key, f"lists {len(unique)} values, more than {MAX_RUNS}; give a smaller range or a count "
                               "such as x4")
    return unique


def _one(key: str, part: str, kind: str, choices: Sequence) -> Any:
    if kind == "choice":
        for value, words in choices:
            if part.lower() in (str(value).lower(), str(words).lower()):
                return value
        named = ", ".join(str(v) for v, _ in choices if v not in ("", None))
        raise ConfigError(key, f"has {part!r}, which is not one of its choices ({named})")
    number = _number(part)
    if number is None:
        if kind in ("int", "float"):
            raise ConfigError(key, f"has {part!r}, which is not a number; {HOW}")
        return part
    if kind == "int" and not float(number).is_integer():
        raise ConfigError(key, f"has {part!r}, which is not a whole number")
    if kind == "int":
        return int(number)
    if kind == "float":
        return float(number)
    return number


def _number(part: str) -> int | float | None:
    """'256' -> 256, '1e-4' -> 0.0001, '2.0' -> 2.0; None for a word."""
    text = part.replace("_", "")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _range(key: str, part: str, kind: str) -> list:
    """`lo..hi` (whole numbers, step 1), `lo..hi xN` (N evenly spaced) or `lo..hi xN log`."""
    match = _RANGE.match(part)
    if not match:
        raise ConfigError(key, f"has {part!r}, which is not a range; write it as 1..4, 0.1..0.5 x5 or "
                               "1e-4..1e-3 x4 log")
    lo, hi = _number(match["lo"]), _number(match["hi"])
    for end, value in (("start", lo), ("end", hi)):
        if value is None:
            raise ConfigError(key, f"has {part!r}, whose {end} is not a number")
    assert lo is not None and hi is not None
    whole = kind == "int" or (kind == "auto" and isinstance(lo, int) and isinstance(hi, int))
    if kind == "choice":
        raise ConfigError(key, f"has {part!r}, but its values are words; list them separated by commas")
    if match["n"] is None:
        if match["log"] or not (isinstance(lo, int) and isinstance(hi, int)):
            raise ConfigError(key, f"has {part!r}: say how many values, as in {match['lo']}..{match['hi']} x4"
                                   f"{' log' if match['log'] else ''}")
        if hi < lo:
            raise ConfigError(key, f"has {part!r}, which runs backwards; write the smaller end first")
        if hi - lo >= MAX_RUNS:
            raise ConfigError(key, f"has {part!r}, more than {MAX_RUNS} values; give a count such as x4")
        return list(range(lo, hi + 1))
    count = _number(match["n"])
    if not isinstance(count, int) or count < 2 or count > MAX_RUNS:
        raise ConfigError(key, f"has {part!r}, whose count x{match['n']} is not a whole number from 2 to {MAX_RUNS}")
    if match["log"]:
        if lo <= 0 or hi <= 0:
            raise ConfigError(key, f"has {part!r}: a log range needs both ends above 0")
        points = [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / (count - 1)) for i in range(count)]
    else:
        points = [lo + (hi - lo) * i / (count - 1) for i in range(count)]
    if whole:
        return [int(round(p)) for p in points]
    return [float(f"{p:.{SIGNIFICANT}g}") for p in points]


def parse_axis(text: str, kind_of=None) -> Axis:
    """`KEY=VALUES` (as --grid takes it) as an Axis; kind_of(key) -> (kind, choices) types the values."""
    key, sep, values = str(text).partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError("grid", f"{str(text).strip()!r} is not KEY=VALUES; write it as diffusion.n_T=1000,256,64")
    if not _KEY.match(key):
        raise ConfigError("grid", f"{key!r} is not a setting's name; write it as lr or diffusion.n_T")
    kind, choices = kind_of(key) if kind_of else ("auto", ())
    return Axis(key, parse_values(key, values, kind, choices))


def grid_points(axes: Sequence[Axis], seeds: int | None = None, first_seed: int = 0) -> list[dict]:
    """Every combination of the axes' values (the first axis outermost), each repeated over `seeds` seeds
    (first_seed, first_seed + 1, ...; None: no seed axis), as {key: value} dicts."""
    keys = [axis.key for axis in axes]
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise ConfigError(twice, "is given two grids; put all its values in one list")
    if seeds is not None:
        if "seed" in keys:
            raise ConfigError("seeds", "cannot go with a list of seeds; give either a seeds count or the seeds")
        if not isinstance(seeds, int) or isinstance(seeds, bool) or not 1 <= seeds <= MAX_RUNS:
            raise ConfigError("seeds", f"must be a whole number from 1 to {MAX_RUNS} (got {seeds!r})")
        axes = [*axes, Axis("seed", tuple(range(first_seed, first_seed + seeds)))]
    count = math.prod(len(axis.values) for axis in axes)
    if count > MAX_RUNS:
        raise ConfigError("grid", f"makes {count} runs, more than {MAX_RUNS}; use fewer values")
    return [dict(zip([a.key for a in axes], combo)) for combo in itertools.product(*(a.values for a in axes))]


def point_label(point: dict) -> str:
    """`n_T=256, seed=1`: what a grid run's name adds to the sweep's base name."""
    return ", ".join(f"{key.rpartition('.')[2]}={_shown(value)}" for key, value in point.items())


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def set_config_key(config: dict, key: str, value: Any) -> None:
    """Set the dotted `key` of `config` in place; ConfigError when its section or the key is not there
    (a typo would otherwise train the preset's value under a run named after the grid's)."""
    *sections, leaf = key.split(".")
    node = config
    for depth, section in enumerate(sections):
        child = node.get(section) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            where = ".".join(sections[:depth + 1])
            raise ConfigError(key, f"is not a setting of this config ({where} is not one of its sections)")
        node = child
    if leaf not in node:
        known = ", ".join(sorted(str(k) for k in node)[:12])
        raise ConfigError(key, f"is not a setting of this config (its keys there: {known})")
    node[leaf] = value
