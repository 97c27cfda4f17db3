"""The run table's metric columns as SQL over a run's row: best probe cell, gains, best FID, final loss.

Each is an expression correlated with the outer `runs` row, so the same name filters (the query line),
sorts, groups and aggregates in SQLite without loading a run into Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import aliased

from ddae_core.rundir import JobKind

from .models import GridCellRow, MetricSummaryRow, Run

FID_KEY = "fid"


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    expression: Any
    accuracy: bool = False      # 0..1, shown as a percentage
    number: bool = True         # aggregated in groups (a layer name is not)


def _best_cell(column: Any) -> Any:
    """One column of the best cell of the grid the run's headline comes from (best_grid)."""
    return (select(column).where(GridCellRow.run == Run.best_grid)
            .order_by(GridCellRow.accuracy.desc(), GridCellRow.timestep).limit(1).scalar_subquery())


def _best_fid(column: Any) -> Any:
    """One column of the lowest FID measured on the run itself or by its FID children (metric `fid`).

    One level of subquery (a join, not an IN of a nested SELECT), so it correlates with the outer run row."""
    child = aliased(Run)
    return (select(column).select_from(child).join(MetricSummaryRow, MetricSummaryRow.run == child.id)
            .where(MetricSummaryRow.key == FID_KEY,
                   (child.id == Run.id) | ((child.parent_run == Run.id) & (child.kind == JobKind.FID)))
            .order_by(MetricSummaryRow.best_value.asc().nulls_last()).limit(1).scalar_subquery())


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("best", "Best probe acc.", Run.best_accuracy, accuracy=True),
    Metric("best_t", "Best cell t", _best_cell(GridCellRow.timestep)),
    Metric("best_layer", "Best cell layer", _best_cell(GridCellRow.layer), number=False),
    Metric("gain_pixels", "Gain over pixels", Run.best_accuracy - Run.baseline_pixels, accuracy=True),
    Metric("gain_random", "Gain over random init", Run.best_accuracy - Run.baseline_random, accuracy=True),
    Metric("fid", "Best FID", _best_fid(MetricSummaryRow.best_value)),
    Metric("fid_step", "Best FID step", _best_fid(MetricSummaryRow.best_step)),
    Metric("loss", "Final loss", Run.last_loss),
)}
