"""Store reads of a run's contents: metric curves and summaries, probe grids, artifacts, images."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from ddae_core.rundir import SAMPLES_KEY, ArtifactKind

from . import blocks
from .models import ArtifactRow, GridCellRow, MetricSummaryRow, Run
from .queries import to_grid_axes, to_metric_summary
from .records import Artifact, GridAxes, GridCell, History, MetricSummary


class ReadsMixin:
    """Mixed into Store; relies on its _read() session and _resolve()."""

    if TYPE_CHECKING:       # Store's, declared here for the type checker
        def _read(self) -> AbstractContextManager[Session]: ...

        def _resolve(self, session: Session, ref: str) -> str: ...

    def metric_keys(self, ref: str) -> list[str]:
        """The run's metric keys, sorted (read from the summary table, not the points)."""
        with self._read() as session:
            run_id = self._resolve(session, ref)
            stmt = select(MetricSummaryRow.key).where(MetricSummaryRow.run == run_id).order_by(MetricSummaryRow.key)
            return list(session.scalars(stmt))

    def metric_history(self, ref: str, key: str, since_step: int | None = None) -> History:
        """The full curve `key` of the run, by step; since_step: only points with step > since_step.

        Sealed blocks plus the short tail of metric_points (db/blocks.py): no object per point
        beyond the arrays' own storage.
        """
        with self._read() as session:
            run_id = self._resolve(session, ref)
            cursor = session.connection().connection.cursor()
            try:
                return blocks.load(cursor, run_id, key, since_step)
            finally:
                cursor.close()

    def metric_histories(self, refs: Iterable[str], key: str) -> dict[str, History]:
        """The curve `key` of several runs (for overlays): run id -> History; runs without it omitted."""
        with self._read() as session:
            run_ids = [self._resolve(session, ref) for ref in refs]
            cursor = session.connection().connection.cursor()
            try:
                curves = {run_id: blocks.load(cursor, run_id, key) for run_id in dict.fromkeys(run_ids)}
            finally:
                cursor.close()
            return {run_id: h for run_id, h in curves.items() if h.steps}

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

    def images(self, ref: str, key: str = SAMPLES_KEY) -> list[tuple[int | None, str]]:
        """(step, path relative to the run folder) of the run's images under `key`, by step."""
        with self._read() as session:
            run_id = self._resolve(session, ref)
            stmt = (select(ArtifactRow.step, ArtifactRow.path)
                    .where(ArtifactRow.run == run_id, ArtifactRow.kind == ArtifactKind.IMAGE, ArtifactRow.key == key)
                    .order_by(ArtifactRow.step, ArtifactRow.path))
            return [(step, path) for step, path in session.execute(stmt)]
