"""Runs in groups: one row per distinct value of the chosen columns, with n, mean +- std, min and max of
chosen metrics over its members (the seeds of one setting), computed by SQLite's GROUP BY.

The same rows feed the Runs view's group tree, `ddae runs list --group-by` and the paper-table export
(db/paper_table.py). Members are read per group on demand (group_members), never all at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, literal, select
from sqlalchemy.orm import Session

from ddae_core.rundir.errors import UserError

from .metrics import METRICS
from .models import Run
from .queries import run_filters
from .query import operand

GroupValue = float | int | str | None


@dataclass(frozen=True)
class Stats:
    """One metric over a group's members that have it: count, mean, sample std (n - 1; None below 2)."""

    count: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True)
class GroupRow:
    values: tuple[GroupValue, ...]      # one per grouping column, None where the members lack it
    n: int                              # members
    stats: dict[str, Stats] = field(default_factory=dict)
    protocols: tuple[str, ...] = ()     # the members' probe protocols (best_protocol), sorted
    baseline_pixels: float | None = None    # mean of the members' baselines
    baseline_random: float | None = None


def check_metrics(metrics: Sequence[str]) -> list[str]:
    """The metric names, or one sentence naming an unknown or non-numeric one."""
    for name in metrics:
        if name not in METRICS or not METRICS[name].number:
            numeric = ", ".join(m for m, v in METRICS.items() if v.number)
            raise UserError(f"Cannot aggregate {name!r}; choose metrics among {numeric}.")
    return list(metrics)


def _check_by(by: Sequence[str]) -> list[str]:
    if not by:
        raise UserError("Group by at least one column (a setting such as diffusion.n_T, or kind, data, ...).")
    return list(by)


def _stats(count: int, total: float | None, squares: float | None, low: float | None,
           high: float | None) -> Stats:
    if not count or total is None:
        return Stats(0, None, None, None, None)
    mean = total / count
    std = None
    if count > 1 and squares is not None:
        std = math.sqrt(max(0.0, (squares - count * mean * mean) / (count - 1)))
    return Stats(count, mean, std, low, high)


def _normal(value: Any) -> GroupValue:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def group_runs(session: Session, by: Sequence[str], metrics: Sequence[str] = ("best",), where: str | None = None,
               **filters) -> list[GroupRow]:
    """Groups of the runs matching `where` (a query line) and `filters` (kind, status, tag, search, as
    Store.list_runs), by the values of `by`, ordered by them; QueryError/UserError name a mistake."""
    by, metrics = _check_by(by), check_metrics(metrics)
    inner_columns = [operand(name).label(f"g{i}") for i, name in enumerate(by)]
    inner_columns += [METRICS[name].expression.label(f"m{i}") for i, name in enumerate(metrics)]
    inner_columns += [Run.best_protocol.label("protocol"), Run.baseline_pixels.label("pixels"),
                      Run.baseline_random.label("random")]
    inner = select(*inner_columns).where(*run_filters(where=where, **filters)).subquery()
    keys = [inner.c[f"g{i}"] for i in range(len(by))]
    aggregates: list[Any] = [func.count()]
    for i in range(len(metrics)):
        m = inner.c[f"m{i}"]
        aggregates += [func.count(m), func.sum(m), func.sum(m * m), func.min(m), func.max(m)]
    aggregates += [func.group_concat(func.distinct(inner.c.protocol)), func.avg(inner.c.pixels),
                   func.avg(inner.c.random)]
    stmt = select(*keys, *aggregates).group_by(*keys).order_by(*(k.asc().nulls_last() for k in keys))
    groups = []
    for row in session.execute(stmt):
        values = tuple(_normal(v) for v in row[:len(by)])
        rest = row[len(by):]
        stats = {name: _stats(*rest[1 + 5 * i: 6 + 5 * i]) for i, name in enumerate(metrics)}
        protocols, pixels, random = rest[-3:]
        groups.append(GroupRow(values, rest[0], stats, tuple(sorted((protocols or "").split(",") if protocols
                                                                     else ())), pixels, random))
    return groups


def member_clauses(by: Sequence[str], values: Sequence[GroupValue]) -> list:
    """WHERE clauses selecting one group's members (a None value: the runs lacking that column)."""
    return [operand(name).is_(None) if value is None else operand(name) == literal(value)
            for name, value in zip(by, values, strict=True)]


def member_ids(session: Session, by: Sequence[str], values: Sequence[GroupValue], where: str | None = None,
               **filters) -> list[str]:
    """The ids of one group's members, oldest first."""
    stmt = (select(Run.id).where(and_(*run_filters(where=where, **filters), *member_clauses(by, values)))
            .order_by(Run.created, Run.id))
    return list(session.scalars(stmt))
