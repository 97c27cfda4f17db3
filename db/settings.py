"""Every setting of a run's resolved spec as one typed row per (run, key): the run table's setting columns.

A key is the name the query line uses for it (db/query.py): the config's keys, then the options' keys, by
their dotted path (`diffusion.n_T`, `network.ch_mults`, `lr`); where both hold a key the config's wins, as
query.operand looks there first. A list is one value (its JSON text), not one key per element. The rows are
written when a run is registered (Store._insert_run) and say which section of the table a key belongs to.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Select, func, insert, select
from sqlalchemy.orm import Session

from ddae_core.rundir import JobKind

from .models import Run, RunSetting
from .records import SETTING_SECTIONS as SECTIONS

SPEC_PARTS = ("config", "options")              # where settings are read from, in query.operand's order
DATA_KEYS = frozenset({"dataset", "classes", "flip", "data", "n_train", "n_test", "network.image_shape"})
DIFFUSION_KEYS = frozenset({"model_type", "framework"})
NETWORK_KEYS = frozenset({"net_type"})
TRAINING_KINDS = frozenset({JobKind.TRAIN, JobKind.FINETUNE, JobKind.IMPORT})

SettingValue = float | int | str | None


def section_of(key: str, kind: str) -> str:
    """The table section of a setting: network, diffusion, data, else training (train runs) or evaluation."""
    head = key.split(".", 1)[0]
    if key in DATA_KEYS or head in DATA_KEYS:
        return "data"
    if head == "network" or key in NETWORK_KEYS:
        return "network"
    if head == "diffusion" or key in DIFFUSION_KEYS:
        return "diffusion"
    if head == "linear":
        return "evaluation"
    return "training" if kind in TRAINING_KINDS else "evaluation"


def _leaves(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _leaves(inner, f"{prefix}.{key}" if prefix else str(key))
    elif prefix:
        yield prefix, value


def typed(value: Any) -> tuple[float | None, str | None]:
    """(number, text): a number or a boolean (1/0, as json_extract gives it) is a number, a string is text, a
    list is its JSON text, null is neither."""
    if isinstance(value, bool):
        return float(value), None
    if isinstance(value, (int, float)):
        return float(value), None
    if value is None:
        return None, None
    if isinstance(value, str):
        return None, value
    return None, json.dumps(value, separators=(",", ":"))


def settings_of(spec: Mapping[str, Any], kind: str) -> dict[str, tuple[str, float | None, str | None]]:
    """key -> (section, number, text) for every setting of a spec; the config's key wins over the options'."""
    found: dict[str, tuple[str, float | None, str | None]] = {}
    for part in SPEC_PARTS:
        for key, value in _leaves(spec.get(part) or {}, ""):
            if key not in found:
                found[key] = (section_of(key, kind), *typed(value))
    return found


def setting_rows(run_id: str, spec: Mapping[str, Any], kind: str) -> list[dict]:
    return [{"run": run_id, "key": key, "section": section, "number": number, "text": text}
            for key, (section, number, text) in settings_of(spec, kind).items()]


def fill(session: Session, run_id: str, spec: Mapping[str, Any], kind: str) -> None:
    """Write the setting rows of a run just registered."""
    rows = setting_rows(run_id, spec, kind)
    if rows:
        session.execute(insert(RunSetting).prefix_with("OR REPLACE"), rows)


def value_of(number: float | None, text: str | None) -> SettingValue:
    """The setting as shown: an integral number as an int, a list's JSON text as is."""
    if number is not None:
        return int(number) if number.is_integer() else number
    return text


def setting_keys(session: Session) -> list[tuple[str, str]]:
    """(key, section) of every setting any run has, by section then key (one index scan)."""
    stmt = select(RunSetting.key, func.min(RunSetting.section)).group_by(RunSetting.key)
    rows = [(key, section) for key, section in session.execute(stmt)]
    order = {s: i for i, s in enumerate(SECTIONS)}
    return sorted(rows, key=lambda r: (order.get(r[1], len(order)), r[0]))


def is_key(session: Session, key: str) -> bool:
    """True when some run has the setting `key`."""
    return session.execute(select(RunSetting.key).where(RunSetting.key == key).limit(1)).first() is not None


def varying_keys(session: Session, runs: Select | None = None) -> list[str]:
    """The keys whose value differs among `runs` (a SELECT of run ids; None: every run), a key some lack
    included; sorted."""
    value = func.coalesce(RunSetting.number, RunSetting.text)
    stmt = select(RunSetting.key).group_by(RunSetting.key)
    if runs is None:
        total = select(func.count()).select_from(Run).scalar_subquery()
    else:
        stmt = stmt.where(RunSetting.run.in_(runs))
        total = select(func.count()).select_from(runs.subquery()).scalar_subquery()
    stmt = stmt.having((func.count(func.distinct(value)) > 1) | (func.count(value) < total))
    return sorted(session.scalars(stmt))


def values_of(session: Session, run_ids: list[str], keys: list[str]) -> dict[str, dict[str, SettingValue]]:
    """run id -> {key: value} of the given settings for a page of runs (runs lacking a key omit it)."""
    found: dict[str, dict[str, SettingValue]] = {run_id: {} for run_id in run_ids}
    if not run_ids or not keys:
        return found
    stmt = select(RunSetting.run, RunSetting.key, RunSetting.number, RunSetting.text).where(
        RunSetting.run.in_(run_ids), RunSetting.key.in_(keys))
    for run, key, number, text in session.execute(stmt):
        found[run][key] = value_of(number, text)
    return found
