"""How a job option is declared and checked: the checks a field carries, `option()` with the CLI's
and the form's hints, and the readers the CLI, the spec functions and the launch forms share.

The options themselves are the models in options.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel, Field as _Field
from pydantic_core import core_schema

from .. import data as datasets
from ..errors import ConfigError, UserError

# Counts (steps, epochs, images) beyond this are typos; it keeps every count an int64 in events and the index.
MAX_COUNT = 10**12
MAX_SEED = 2**32 - 1                # numpy's and the data sampler's seeds are 32-bit
MAX_RATE = 1e9                      # a float option's bound: finite in every product it enters (minutes * 60)
MAX_LR = 10.0                       # above it every optimizer here diverges (1e308 overflowed Adam's state)

# The probe protocols a spec may name, each with the label every view prints beside its numbers.
PROTOCOLS = {
    "fast": "fast (official optimiser on cached features)",
    "official": "official",
    "standardized": "standardised heads (MAE-style, not the official protocol)",
    "knn": "k-NN (k=20, cosine, T=0.07; no training)",
    "dit-official": "official DiT (DDAE's DiT/linear.py on cached latents)",
    "attentive": "attentive (cross-attention pooling over standardised tokens; not the official protocol)",
    "aggregate": "standardised heads + learned aggregation over all cells (not the official protocol)",
}


def whole_in(field: str, value, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    """`value` as a whole number from minimum to maximum, or ConfigError naming `field`."""
    try:
        number = _whole(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(field, f"must be a whole number (got {value!r})") from None
    if number < minimum:
        raise ConfigError(field, f"must be at least {minimum} (got {value!r})")
    if number > maximum:
        raise ConfigError(field, f"must be at most {maximum} (got {value!r})")
    return number


def _whole(value) -> int:
    """3, 3.0, "3" and "1e23" as ints; ValueError for 2.5, inf, nan or "x", TypeError for None or a list."""
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            value = float(value)    # "1e23" is a whole number, only a large one
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(value)


def positive_number(field: str, value, maximum: float = MAX_RATE) -> float:
    """A finite number above 0 and at most `maximum`, or ConfigError naming `field`."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(field, f"must be a number (got {value!r})") from None
    if not math.isfinite(number):   # an inf learning rate trains to NaN weights without an error
        raise ConfigError(field, f"must be a finite number (got {value!r})")
    if not number > 0:
        raise ConfigError(field, f"must be greater than 0 (got {value!r})")
    if number > maximum:
        raise ConfigError(field, f"must be at most {maximum:g} (got {value!r})")
    return number


def check_seed(seed) -> int:
    """A random seed from 0 to MAX_SEED; ConfigError naming `seed` otherwise."""
    return whole_in("seed", seed, 0, MAX_SEED)


def check_device(request: str | None) -> str:
    """auto (None too), cpu, cuda or cuda:N, lower-cased; ConfigError naming `device` otherwise."""
    request = (request or "auto").lower()
    if request not in ("auto", "cpu", "cuda") and not request.startswith("cuda:"):
        raise ConfigError("device", f"must be auto, cpu or cuda (got {request!r})")
    return request


class _Check:
    """Field metadata that validates (None passes: it means "not given") and raises ConfigError."""

    def __get_pydantic_core_schema__(self, source, handler):
        return core_schema.with_info_plain_validator_function(
            lambda value, info: None if value is None else self.check(info.field_name, value))

    def check(self, field: str, value):
        raise NotImplementedError


@dataclass(frozen=True)
class Whole(_Check):
    """A whole number in [minimum, maximum]; the form shows an int field, the CLI takes 1e6 too."""

    minimum: int = 1
    maximum: int = MAX_COUNT

    def check(self, field: str, value):
        return whole_in(field, value, self.minimum, self.maximum)


@dataclass(frozen=True)
class Positive(_Check):
    """A finite float above 0 and at most `maximum` (inf and nan refused)."""

    maximum: float = MAX_RATE

    def check(self, field: str, value):
        return positive_number(field, value, self.maximum)


@dataclass(frozen=True)
class Text(_Check):
    """A string (a number typed in a text field stays as typed); blank means not given."""

    def check(self, field: str, value):
        if isinstance(value, (list, tuple)):
            return list(value)
        text = str(value).strip()
        return text or None


@dataclass(frozen=True)
class Passed(_Check):
    """The value as given: the config checks it where it lands (`studio.checkpoint_every_steps: ...`)."""

    def check(self, field: str, value):
        return value


@dataclass(frozen=True)
class Flag(_Check):
    """On or off (a check box; --x, or --no-x where it is on by default)."""

    def check(self, field: str, value):
        return bool(value)


@dataclass(frozen=True)
class Device(_Check):
    """auto, cpu, cuda or cuda:N."""

    def check(self, field: str, value):
        return check_device(value)


@dataclass(frozen=True)
class DataSpecText(_Check):
    """A data spec as typed (builtin:shapes, cifar10, folder:PATH, ...); its files are checked at create_job."""

    def check(self, field: str, value):
        try:
            datasets.check_data_spec(value)
        except UserError as exc:
            raise ConfigError(field, str(exc)) from None
        return value


@dataclass(frozen=True)
class OneOf(_Check):
    """One of a fixed set of values."""

    values: tuple

    def check(self, field: str, value):
        if value not in self.values:
            raise ConfigError(field, f"must be one of {', '.join(map(str, self.values))} (got {value!r})")
        return value


@dataclass(frozen=True)
class Layers(_Check):
    """Layer names as a list, from a list or "out_6,out_7"."""

    def check(self, field: str, value):
        items = value.split(",") if isinstance(value, str) else list(value)
        return [str(s).strip() for s in items if str(s).strip()] or None


def option(default: Any = None, help: str = "", *, label: str | None = None, hint: str | None = None,
           flag: str | None = None, metavar: str | None = None,
           choices: tuple = (), exclusive: str | None = None, cli: bool = True, gui: bool = True,
           kind: str | None = None, spec: bool = True, default_text: str | None = None, tip: str | None = None,
           filled: bool = False, cli_choices: bool = True) -> Any:
    """A model field with what the CLI and the form need to show it.

    help: the CLI's help and (capitalised) the form's tooltip; tip: the tooltip where it says more.
    label: the form's label (default: the name spelled out); hint: the form's placeholder (default: the
    default); filled: the form shows the default as the field's text instead.
    flag, metavar: the CLI's spelling (default --field-name; the dest is the field's name).
    choices: (value, text) pairs for the CLI's choices and the form's combo box; cli_choices: False where
    the CLI takes values beyond them (cuda:1). exclusive: a CLI group whose options exclude each other.
    cli, gui: False keeps the field off the CLI or the form (another piece owns it there).
    kind: the form's editor where the check does not say it (checkpoint, data).
    spec: False where the spec function places the value itself instead of in `options`.
    default_text: how the CLI's help names a default that is not a value ("the config's").
    """
    extra = {"label": label, "hint": hint, "flag": flag, "metavar": metavar,
             "choices": tuple(choices), "exclusive": exclusive, "cli": cli, "gui": gui, "kind": kind,
             "spec": spec, "default_text": default_text, "tip": tip, "filled": filled, "cli_choices": cli_choices}
    hints = {k: v for k, v in extra.items() if v is not None}
    return _Field(default, description=help, json_schema_extra=cast(Any, hints))     # tuples are fine here


@dataclass(frozen=True)
class OptionInfo:
    """One field as the CLI and the form see it."""

    name: str
    default: Any
    help: str
    label: str
    hint: str
    kind: str                   # int | float | check | choice | data | text
    choices: tuple
    flag: str
    metavar: str | None
    exclusive: str | None
    cli: bool
    gui: bool
    spec: bool
    default_text: str | None
    tip: str
    filled: bool
    cli_choices: bool


def _kind_of(field) -> str:
    for meta in field.metadata:
        if isinstance(meta, Whole):
            return "int"
        if isinstance(meta, Positive):
            return "float"
        if isinstance(meta, Flag):
            return "check"
        if isinstance(meta, DataSpecText):
            return "data"
    return "text"


def infos(model: type[BaseModel]) -> list[OptionInfo]:
    """The model's fields in declaration order, with their CLI and form hints."""
    out = []
    for name, field in model.model_fields.items():
        extra = cast(dict[str, Any], field.json_schema_extra or {})
        choices = extra.get("choices", ())
        kind = extra.get("kind") or ("choice" if choices else _kind_of(field))
        default = field.default
        hint = extra.get("hint")
        if hint is None:
            hint = "" if default is None or kind in ("check", "choice") else f"{default:g}" \
                if isinstance(default, float) else str(default)
        out.append(OptionInfo(
            name=name, default=default, help=field.description or "",
            label=extra.get("label") or name.replace("_", " ").capitalize(), hint=hint, kind=kind,
            choices=choices, flag=extra.get("flag") or "--" + name.replace("_", "-"),
            metavar=extra.get("metavar"), exclusive=extra.get("exclusive"), cli=extra.get("cli", True),
            gui=extra.get("gui", True), spec=extra.get("spec", True), default_text=extra.get("default_text"),
            tip=extra.get("tip") or _sentence(field.description or ""), filled=extra.get("filled", False),
            cli_choices=extra.get("cli_choices", True)))
    return out


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def info(model: type[BaseModel], name: str) -> OptionInfo:
    return next(i for i in infos(model) if i.name == name)


def parse_options(model: type[BaseModel], values: dict) -> BaseModel:
    """`values` checked by `model`; None (a blank field, an absent flag) means the field's default.

    An unknown option is a TypeError, as an unknown keyword of the spec function was.
    """
    unknown = sorted(set(values) - set(model.model_fields))
    if unknown:
        raise TypeError(f"unknown job option(s) for {model.__name__}: {', '.join(unknown)}")
    return model(**{k: v for k, v in values.items() if v is not None})


def spec_options(options: BaseModel) -> dict:
    """The fields that go into the spec's `options` as they are (spec=True), in declaration order."""
    return {i.name: getattr(options, i.name) for i in infos(type(options)) if i.spec}
