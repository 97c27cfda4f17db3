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


def parse_spec(spec: str, data_root: Path | None = None) -> DataSpec:
    """Syntax only: no file is opened and no folder is looked at (but the one choice below).

    A relative folder is relative to the working directory where a person types it; in a stored spec
    (`stored_spec`) it is relative to the workspace's data folder `data_root`, so a workspace moved to another
    machine (the bundled CIFAR-10 example) finds its data. Specs stored before that rule wrote the path as
    typed: when it names no folder under `data_root` but does from the working directory, that one is meant.
    """
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
        return DataSpec(scheme, path=_folder(rest.strip(), data_root))
    raise DataError(f"Unknown dataset {text!r}; use {KNOWN}.")


def _folder(text: str, data_root: Path | None) -> Path:
    path = Path(text).expanduser()
    if path.is_absolute() or data_root is None:
        return path.absolute()
    under_root = Path(data_root).expanduser().absolute() / path
    return under_root if under_root.exists() or not path.absolute().exists() else path.absolute()


def stored_spec(spec: str, data_root: Path) -> str:
    """`spec` as a run's spec.yaml keeps it: a folder absolute, or relative to `data_root` when it lies inside
    (workers run in their run folder, not where the command was typed)."""
    parsed = parse_spec(spec)
    if parsed.path is None:
        return spec.strip()
    scheme = spec.strip().partition(":")[0].lower()
    try:
        inside = parsed.path.resolve().relative_to(Path(data_root).expanduser().resolve())
    except ValueError:
        return f"{scheme}:{parsed.path}"
    return f"{scheme}:{inside}"


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
