"""Data specs: the one-line strings that name a dataset, e.g. `builtin:shapes?n_train=2000` or `folder:~/pets`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError

KNOWN = "builtin:shapes, cifar10, cifar100, folder:PATH or tiny-imagenet:PATH"

# Parameters of builtin:shapes: name -> (default, lowest, highest).
SHAPES_PARAMS: dict[str, tuple[int, int, int]] = {
    "n_train": (10_000, 1, 200_000),
    "n_test": (2_000, 1, 200_000),
    "seed": (0, 0, 2**32 - 1),
    "texture": (1, 0, 1),       # 0: plain backgrounds (one colour each), so the shape is all there is to model
}


@dataclass(frozen=True)
class DataSpec:
    kind: str                   # "shapes" | "cifar10" | "cifar100" | "folder" | "tiny-imagenet"
    path: Path | None = None    # for folder and tiny-imagenet, absolute
    params: dict[str, int] = field(default_factory=dict)


def parse_spec(spec: str) -> DataSpec:
    """Syntax only: no file is opened and no folder is looked at."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"No dataset was given; use {KNOWN}.")
    text = spec.strip()
    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if not sep:
        if scheme in ("cifar10", "cifar100"):
            return DataSpec(scheme)
        if scheme in ("folder", "tiny-imagenet"):
            raise DataError(f"Dataset {scheme!r} needs a folder; write it as {scheme}:PATH.")
        raise DataError(f"Unknown dataset {text!r}; use {KNOWN}.")
    if scheme == "builtin":
        return DataSpec("shapes", params=_parse_builtin(rest))
    if scheme in ("folder", "tiny-imagenet"):
        if not rest.strip():
            raise DataError(f"Dataset {scheme}: needs a folder after the colon, e.g. {scheme}:/data/images.")
        return DataSpec(scheme, path=Path(rest.strip()).expanduser().absolute())
    raise DataError(f"Unknown dataset {text!r}; use {KNOWN}.")


def _parse_builtin(rest: str) -> dict[str, int]:
    name, _, query = rest.partition("?")
    if name.strip().lower() != "shapes":
        raise DataError(f"There is no builtin dataset {name!r}; use builtin:shapes.")
    params = {key: default for key, (default, _, _) in SHAPES_PARAMS.items()}
    seen: set[str] = set()
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        key = key.strip()
        if key not in SHAPES_PARAMS:
            raise DataError(f"builtin:shapes has no parameter {key!r}; use n_train, n_test or seed.")
        if not eq:
            raise DataError(f"builtin:shapes parameter {key!r} needs a value, e.g. {key}={SHAPES_PARAMS[key][0]}.")
        if key in seen:
            raise DataError(f"builtin:shapes parameter {key!r} is given twice; keep one.")
        seen.add(key)
        _, low, high = SHAPES_PARAMS[key]
        try:
            number = int(value.strip())
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            raise DataError(f"builtin:shapes parameter {key} must be a whole number from {low} to {high} "
                            f"(got {value!r}).")
        params[key] = number
    return params
