"""Store reads behind the lab's run table: setting and metric columns, groups, parallel-coordinate axes."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from . import groups, settings
from .metrics import METRICS
from .models import Run, RunSetting
from .queries import run_filters, summary_select, to_summaries
from .query import COLUMNS
from .records import RunSummary

Value = settings.SettingValue


@dataclass(frozen=True)
class Axes:
    """Parallel-coordinate data: the matching runs (oldest first) and, per column, one value per run."""

    run_ids: tuple[str, ...]
    columns: tuple[str, ...]
    values: tuple[tuple[Value, ...], ...]        # values[c][r]: column c of run r; None where it lacks it


class TableMixin:
    """Mixed into Store; relies on its _read() session."""

    if TYPE_CHECKING:       # Store's, declared here for the type checker
        def _read(self) -> AbstractContextManager[Session]: ...

    def setting_keys(self) -> list[tuple[str, str]]:
        """(key, section) of every setting any run has, by section (db/settings.py SECTIONS) then key."""
        with self._read() as session:
            return settings.setting_keys(session)

    def varying_keys(self, **filters) -> list[str]:
        """The settings whose value differs among the runs matching `filters` (as list_runs: kind, status,
        tag, search, where), a key some of them lack included."""
        with self._read() as session:
            clauses = run_filters(**filters)
            runs = select(Run.id).where(*clauses) if clauses else None
            return settings.varying_keys(session, runs)

    def column_values(self, run_ids: Sequence[str], columns: Sequence[str]) -> dict[str, dict[str, Value]]:
        """run id -> {column: value} for a page of runs; columns are metrics (db/metrics.py) or settings."""
        metric_names = [c for c in columns if c in METRICS]
        keys = [c for c in columns if c not in METRICS and c not in COLUMNS]
        with self._read() as session:
            found = settings.values_of(session, list(run_ids), keys)
            if metric_names and run_ids:
                stmt = select(Run.id, *(METRICS[m].expression for m in metric_names)).where(Run.id.in_(run_ids))
                for row in session.execute(stmt):
                    found[row[0]].update({m: v for m, v in zip(metric_names, row[1:])})
            return found

    def group_runs(self, by: Sequence[str], metrics: Sequence[str] = ("best",), **filters) -> list[groups.GroupRow]:
        """Groups by the values of `by` with n, mean +- std, min and max of `metrics` (db/groups.py)."""
        with self._read() as session:
            return groups.group_runs(session, by, metrics, **filters)

    def group_members(self, by: Sequence[str], values: Sequence[groups.GroupValue], **filters) -> list[RunSummary]:
        """The runs of one group (values as group_runs gave them), oldest first."""
        clauses = [*run_filters(**filters), *groups.member_clauses(by, values)]
        stmt = summary_select().where(and_(*clauses)).order_by(Run.created, Run.id)
        with self._read() as session:
            return to_summaries(session.connection().execute(stmt).all())

    def axes(self, columns: Sequence[str], **filters) -> Axes:
        """Each column's value for every run matching `filters`: one indexed read per setting, one per the
        metrics together."""
        clauses = run_filters(**filters)
        metric_names = [c for c in columns if c in METRICS or c in COLUMNS]
        with self._read() as session:
            conn = session.connection()
            ids_stmt = select(Run.id).where(*clauses)
            rows = conn.execute(select(Run.id, *(_column(m) for m in metric_names)).where(*clauses)
                                .order_by(Run.created, Run.id)).all()
            run_ids = tuple(r[0] for r in rows)
            by_column: dict[str, tuple[Value, ...]] = {
                m: tuple(r[1 + i] for r in rows) for i, m in enumerate(metric_names)}
            for key in columns:
                if key in by_column:
                    continue
                stmt = select(RunSetting.run, RunSetting.number, RunSetting.text).where(RunSetting.key == key)
                if clauses:
                    stmt = stmt.where(RunSetting.run.in_(ids_stmt))
                values = {run: settings.value_of(number, text) for run, number, text in conn.execute(stmt)}
                by_column[key] = tuple(values.get(run_id) for run_id in run_ids)
        return Axes(run_ids, tuple(columns), tuple(by_column[c] for c in columns))


def _column(name: str):
    return METRICS[name].expression if name in METRICS else COLUMNS[name]
