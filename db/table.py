"""Store reads behind the lab's run table: setting and metric columns, groups, parallel-coordinate axes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from ddae_core.rundir import JobKind
from ddae_core.rundir.errors import UserError

from . import groups, paper_table, settings
from .metrics import FID_KEY, METRICS
from .models import Run
from .queries import run_filters, summary_select, to_summaries
from .query import COLUMNS
from .records import History, RunRecord, RunSummary

Value = settings.SettingValue


@dataclass(frozen=True)
class Axes:
    """Parallel-coordinate data: the matching runs (oldest first) and, per column, one value per run."""

    run_ids: tuple[str, ...]
    columns: tuple[str, ...]
    values: tuple[tuple[Value, ...], ...]        # values[c][r]: column c of run r; None where it lacks it


class TableMixin:
    """Mixed into Store; relies on its _read() session, _resolve(), get_run() and metric_histories()."""

    if TYPE_CHECKING:       # Store's, declared here for the type checker
        def _read(self) -> AbstractContextManager[Session]: ...

        def _resolve(self, session: Session, ref: str) -> str: ...

        def get_run(self, ref: str) -> RunRecord: ...

        def metric_histories(self, refs: Iterable[str], key: str) -> dict[str, History]: ...

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

    def checkpoint_results(self, ref: str) -> tuple[dict[int, float], dict[int, float]]:
        """A train run's per-checkpoint results from its children: step -> best probe accuracy (probe runs
        on a numbered checkpoint) and step -> FID (its FID runs' `fid` points, by checkpoint step)."""
        with self._read() as session:
            run_id = self._resolve(session, ref)
            accuracy: dict[int, float] = {}
            probes = select(Run.parent_checkpoint, Run.best_accuracy).where(
                Run.parent_run == run_id, Run.kind == JobKind.PROBE, Run.best_accuracy.is_not(None))
            for checkpoint, best in session.execute(probes):
                if best is not None and checkpoint is not None and str(checkpoint).isdigit():
                    step = int(checkpoint)
                    accuracy[step] = max(float(best), accuracy.get(step, float(best)))
            fid_runs = list(session.scalars(select(Run.id).where(
                (Run.id == run_id) | ((Run.parent_run == run_id) & (Run.kind == JobKind.FID)))))
        fids: dict[int, float] = {}
        for history in self.metric_histories(fid_runs, FID_KEY).values():
            for step, value in zip(history.steps.tolist(), history.values.tolist()):
                if value == value:          # not NaN
                    fids[int(step)] = min(value, fids.get(int(step), value))
        return accuracy, fids

    def readme_row(self, ref: str) -> str:
        """The run's best-probe vs best-FID checkpoints as the official README's table row (db/paper_table.py);
        UserError when its children have not measured both."""
        record = self.get_run(ref)
        pair = paper_table.checkpoint_pair(*self.checkpoint_results(record.id))
        if pair is None:
            raise UserError(f"Run {record.name!r} has no probe and FID results on numbered checkpoints yet; "
                            f"`ddae sweep --run {record.id}` measures both.")
        config = record.spec.get("config") or {}
        network = config.get("network") or {}
        channels = network.get("n_channels") or network.get("ch")
        net = f"{config.get('net_type', 'UNet')}" + (f", {channels} channels" if channels else "")
        return paper_table.readme_row(record.name, str(config.get("model_type", "—")), net, pair)

    def axes(self, columns: Sequence[str], **filters) -> Axes:
        """Each column's value for every run matching `filters`, oldest first: the run-row columns and metrics
        in one query, each setting in one read of its covering index (key, number, text; run) mapped onto the
        runs. Raw cursor rows transposed by zip, never a Python object per value: 10,000 runs x 6 axes read in
        a few tens of ms (bench.runs_table)."""
        metric_names = [c for c in columns if c in METRICS or c in COLUMNS]
        stmt = (select(Run.id, *(_column(m) for m in metric_names)).where(*run_filters(**filters))
                .order_by(Run.created, Run.id))
        with self._read() as session:
            conn = session.connection()
            # render_postcompile spells out the IN lists (kind, status), so the text runs on the DBAPI cursor.
            compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
            cursor = conn.connection.cursor()
            try:
                rows = cursor.execute(str(compiled), [compiled.params[p] for p in compiled.positiontup or ()])
                found = list(zip(*rows.fetchall())) or [()] * (1 + len(metric_names))
                run_ids = found[0]
                by_column: dict[str, tuple[Value, ...]] = dict(zip(metric_names, found[1:]))
                for key in columns:
                    if key not in by_column:
                        cursor.execute("SELECT run, coalesce(number, text) FROM run_settings WHERE key = ?", (key,))
                        by_column[key] = tuple(map(dict(cursor.fetchall()).get, run_ids))
            finally:
                cursor.close()
        return Axes(run_ids, tuple(columns), tuple(by_column[c] for c in columns))


def _column(name: str):
    return METRICS[name].expression if name in METRICS else COLUMNS[name]
