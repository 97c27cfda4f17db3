"""Store reads of a run's contents: metric curves and summaries, probe grids, artifacts, images."""

from __future__ import annotations

import math
from collections.abc import Iterable

from sqlalchemy import select

from .models import ArtifactRow, GridCellRow, MetricPoint, MetricSummaryRow, Run
from .queries import to_grid_axes, to_metric_summary
from .records import Artifact, GridAxes, GridCell, History, MetricSummary

_NAN = math.nan


def _history(rows: list) -> History:
    """Rows of (step, value, time) -> History of plain lists (NULL values back to NaN)."""
    if not rows:
        return History([], [], [])
    steps, values, times = map(list, zip(*rows))
    if None in values:
        values = [_NAN if v is None else v for v in values]
    return History(steps, values, times)


class ReadsMixin:
    """Mixed into Store; relies on its _read() session and _resolve()."""

    def metric_keys(self, ref: str) -> list[str]:
        """The run's metric keys, sorted (read from the summary table, not the points)."""
        with self._read() as session:
            run_id = self._resolve(session, ref)
            stmt = select(MetricSummaryRow.key).where(MetricSummaryRow.run == run_id).order_by(MetricSummaryRow.key)
            return list(session.scalars(stmt))

    def metric_history(self, ref: str, key: str, since_step: int | None = None) -> History:
        """The full curve `key` of the run, by step; since_step: only points with step > since_step.

        One range scan of metric_points' primary key (run, key, step), three columns, plain lists.
        """
        with self._read() as session:
            run_id = self._resolve(session, ref)
            sql = "SELECT step, value, time FROM metric_points WHERE run = ? AND key = ?"
            params: tuple = (run_id, key)
            if since_step is not None:
                sql += " AND step > ?"
                params += (int(since_step),)
            # The driver's cursor gives tuples straight from C: no Row object per point.
            cursor = session.connection().connection.driver_connection.cursor()
            try:
                rows = cursor.execute(sql + " ORDER BY step", params).fetchall()
            finally:
                cursor.close()
            return _history(rows)

    def metric_histories(self, refs: Iterable[str], key: str) -> dict[str, History]:
        """The curve `key` of several runs (for overlays): run id -> History; runs without it omitted."""
        with self._read() as session:
            run_ids = [self._resolve(session, ref) for ref in refs]
            out: dict[str, History] = {}
            cursor = session.connection().connection.driver_connection.cursor()
            try:
                for run_id in dict.fromkeys(run_ids):
                    rows = cursor.execute(
                        "SELECT step, value, time FROM metric_points WHERE run = ? AND key = ? ORDER BY step",
                        (run_id, key)).fetchall()
                    if rows:
                        out[run_id] = _history(rows)
            finally:
                cursor.close()
            return out

    def summaries(self, ref: str) -> list[MetricSummary]:
        """Latest/best/min/max/count of each of the run's metric keys, sorted by key."""
        with self._read() as session:
            run_id = self._resolve(session, ref)
            rows = session.scalars(select(MetricSummaryRow).where(MetricSummaryRow.run == run_id)
                                   .order_by(MetricSummaryRow.key))
            return [to_metric_summary(r) for r in rows]

    def grid_axes(self, ref: str) -> GridAxes | None:
        """The probe grid's axes as the run announced them, or None before its `grid` event."""
        with self._read() as session:
            run_id = self._resolve(session, ref)
            return to_grid_axes(session.execute(select(Run.grid_axes).where(Run.id == run_id)).scalar_one())

    def grid_cells(self, ref: str) -> list[GridCell]:
        """Every probe-grid cell known so far, by (timestep, layer)."""
        with self._read() as session:
            run_id = self._resolve(session, ref)
            stmt = (select(GridCellRow.layer, GridCellRow.timestep, GridCellRow.accuracy, GridCellRow.time)
                    .where(GridCellRow.run == run_id).order_by(GridCellRow.timestep, GridCellRow.layer))
            return [GridCell(*row) for row in session.execute(stmt)]

    def artifacts(self, ref: str, kind: str | None = None) -> list[Artifact]:
        """Files the run listed (checkpoints, images, figures, files), by kind, step and path."""
        with self._read() as session:
            run_id = self._resolve(session, ref)
            stmt = select(ArtifactRow).where(ArtifactRow.run == run_id)
            if kind is not None:
                stmt = stmt.where(ArtifactRow.kind == kind)
            stmt = stmt.order_by(ArtifactRow.kind, ArtifactRow.step.nulls_first(), ArtifactRow.path)
            return [Artifact(a.run, a.kind, a.key, a.step, a.path, a.time) for a in session.scalars(stmt)]

    def images(self, ref: str, key: str = "samples") -> list[tuple[int | None, str]]:
        """(step, path relative to the run folder) of the run's images under `key`, by step."""
        with self._read() as session:
            run_id = self._resolve(session, ref)
            stmt = (select(ArtifactRow.step, ArtifactRow.path)
                    .where(ArtifactRow.run == run_id, ArtifactRow.kind == "image", ArtifactRow.key == key)
                    .order_by(ArtifactRow.step, ArtifactRow.path))
            return [(step, path) for step, path in session.execute(stmt)]
