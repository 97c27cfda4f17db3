"""Statements and row-to-record conversions shared by the Store's methods."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from ddae_core.rundir import JobKind

from .metrics import METRICS
from .models import GridCellRow, MetricSummaryRow, QueueRow, Run
from .query import has_tag, operand, where_clause
from .records import GridAxes, MetricSummary, RunRecord, RunSummary

LOSS_KEY = "loss/train"
PROBE_KEY = "probe/accuracy"
BASELINE_KEYS = {"baseline_pixels": "probe/baseline/pixels", "baseline_random": "probe/baseline/random_init"}
_PREFIX_END = "\U0010ffff"

SUMMARY_COLUMNS = (
    Run.id, Run.name, Run.kind, Run.status, Run.data, Run.created, Run.started, Run.finished,
    Run.best_accuracy, Run.last_loss, Run.tags, Run.notes, Run.error, Run.device, Run.parent_run,
    Run.progress_done, Run.progress_total, Run.progress_stage, QueueRow.priority,
    Run.baseline_pixels, Run.baseline_random, Run.best_protocol, Run.best_grid,
)

ORDER_COLUMNS: dict[str, Any] = {
    "created": Run.created,
    "started": Run.started,
    "finished": Run.finished,
    "name": Run.name,
    "kind": Run.kind,
    "status": Run.status,
    "id": Run.id,
    "data": Run.data,
    "best_accuracy": Run.best_accuracy,
    "last_loss": Run.last_loss,
    "priority": QueueRow.priority,
}


def _as_seq(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def run_filters(kind=None, status=None, tag=None, search=None, where: str | None = None) -> list:
    """WHERE clauses for list_runs/count_runs; kind and status take one value or several, `where` is a query
    line (db/query.py; QueryError when malformed)."""
    clauses = []
    if (kinds := _as_seq(kind)) is not None:
        clauses.append(Run.kind.in_(kinds))
    if (statuses := _as_seq(status)) is not None:
        clauses.append(Run.status.in_(statuses))
    for one_tag in _as_seq(tag) or ():
        clauses.append(has_tag(one_tag))
    if search:
        pattern = f"%{_escape_like(search.strip())}%"
        clauses.append(or_(*(col.ilike(pattern, escape="\\")
                             for col in (Run.name, Run.id, Run.notes, Run.tags, Run.data, Run.kind))))
    if (query := where_clause(where)) is not None:
        clauses.append(query)
    return clauses


def summary_select() -> Select:
    """SELECT of RunSummary columns: the runs table (summary columns included) and its queue entry."""
    return select(*SUMMARY_COLUMNS).outerjoin(QueueRow, QueueRow.run == Run.id)


def _own_best(run_id) -> Any:
    """SQL for the headline accuracy of a run's own grid: what the finished grid reported as its headline
    (probe/accuracy: the test accuracy of the cell chosen on held-out training images, or of the best on test),
    and while it fills in, its best cell so far. The best cell alone overstated a held-out grid's headline.
    A segmentation grid's cells are mIoU, not accuracy: it has no headline accuracy (its segmentation/miou says it)."""
    me = aliased(Run)
    measured_accuracy = select(me.kind).where(me.id == run_id).scalar_subquery() != JobKind.SEGMENTATION
    cells = select(func.max(GridCellRow.accuracy)).where(GridCellRow.run == run_id,
                                                         measured_accuracy).scalar_subquery()
    probe = select(MetricSummaryRow.latest_value).where(
        MetricSummaryRow.run == run_id, MetricSummaryRow.key == PROBE_KEY).scalar_subquery()
    return func.coalesce(probe, cells)


def _own_protocol(run_id) -> Any:
    me = aliased(Run)
    options = func.json_extract(me.spec, "$.options.protocol")
    standardized = func.coalesce(func.json_extract(me.spec, "$.options.standardize"), 0) != 0
    # Older probes said protocol: fast with standardize: true.
    return select(case((standardized, "standardized"), else_=func.coalesce(options, "fast"))).where(
        me.id == run_id, me.kind == JobKind.PROBE).scalar_subquery()


def _of_headline_child(run_id, column: str) -> Any:
    """SQL for one column of the probe child that speaks for run_id: the highest best accuracy, ties the newest.

    One level of subquery, so it correlates with an UPDATE of runs as well as with a bound run id (a
    nested "child.id = (SELECT ... )" did not, and picked the best probe of the whole workspace)."""
    child = aliased(Run)
    return (select(getattr(child, column))
            .where(child.parent_run == run_id, child.kind == JobKind.PROBE, child.best_accuracy.is_not(None))
            .order_by(child.best_accuracy.desc(), child.id.desc()).limit(1).scalar_subquery())


def headline_of(run_id) -> dict[str, Any]:
    """SQL for the run row's headline columns, all from ONE grid run (the rule every view shows):

    a run with a grid of its own (cells, or a probe/accuracy point) speaks for itself, with its own
    baselines (NULL: none measured) and its protocol; any other run (a train run) shows the probe child
    with the highest best accuracy (ties: the newest), copying that child's columns whole. best_grid
    names the grid run the numbers come from."""
    own_best = _own_best(run_id)
    own: dict[str, Any] = {"best_accuracy": own_best, "best_grid": run_id, "best_protocol": _own_protocol(run_id)}
    for column, key in BASELINE_KEYS.items():
        own[column] = select(MetricSummaryRow.latest_value).where(
            MetricSummaryRow.run == run_id, MetricSummaryRow.key == key).scalar_subquery()
    child = {column: _of_headline_child(run_id, "id" if column == "best_grid" else column) for column in own}
    return {column: case((own_best.is_not(None), own[column]), else_=child[column]) for column in own}


def last_loss_of(run_id) -> Any:
    return select(MetricSummaryRow.latest_value).where(
        MetricSummaryRow.run == run_id, MetricSummaryRow.key == LOSS_KEY).scalar_subquery()


def order_clause(order_by: str, descending: bool, setting: bool = False) -> list:
    """ORDER BY a run column, a metric (db/metrics.py) or, when `setting` says the name is one, a spec key."""
    if order_by in ORDER_COLUMNS:
        column = ORDER_COLUMNS[order_by]
    elif order_by in METRICS or setting:
        column = operand(order_by)
    else:
        raise ValueError(f"Cannot sort runs by {order_by!r}; choose one of {', '.join(ORDER_COLUMNS)}, "
                         f"a metric ({', '.join(METRICS)}) or a setting such as diffusion.n_T.")
    main = column.desc() if descending else column.asc()
    tie = Run.id.desc() if descending else Run.id.asc()
    return [main.nulls_last(), tie]


@lru_cache(maxsize=4096)
def tags_of(text: str | None) -> tuple[str, ...]:
    """Tags from their JSON text; cached, since many runs share the same few tag sets."""
    if not text or text == "[]":
        return ()
    try:
        tags = json.loads(text)
    except ValueError:
        return ()
    return tuple(str(t) for t in tags) if isinstance(tags, list) else ()


def to_summaries(rows: Sequence) -> list[RunSummary]:
    return [RunSummary(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                       tags_of(r[10]), r[11], r[12], r[13], r[14], r[15], r[16], r[17], r[18],
                       r[19], r[20], r[21], r[22]) for r in rows]


def to_record(run: Run) -> RunRecord:
    return RunRecord(
        id=run.id, name=run.name, kind=run.kind, status=run.status, data=run.data,
        spec=json.loads(run.spec) if run.spec else {},
        parent_run=run.parent_run, parent_ref=run.parent_ref, parent_checkpoint=run.parent_checkpoint,
        created=run.created, started=run.started, finished=run.finished,
        pid=run.pid, host=run.host, device=run.device, error=run.error,
        tags=tags_of(run.tags), notes=run.notes or "",
        device_request=run.device_request, gpus=run.gpus,
        progress_done=run.progress_done, progress_total=run.progress_total,
        progress_stage=run.progress_stage, progress_time=run.progress_time,
        events_offset=run.events_offset,
        best_accuracy=run.best_accuracy, baseline_pixels=run.baseline_pixels, baseline_random=run.baseline_random,
        best_protocol=run.best_protocol, best_grid=run.best_grid,
    )


def to_metric_summary(row: MetricSummaryRow) -> MetricSummary:
    return MetricSummary(
        run=row.run, key=row.key, count=row.count,
        latest_step=row.latest_step, latest_value=row.latest_value, latest_time=row.latest_time,
        best_step=row.best_step, best_value=row.best_value, min=row.min, max=row.max,
    )


def to_grid_axes(text: str | None) -> GridAxes | None:
    if not text:
        return None
    axes = json.loads(text)
    labels = axes.get("labels") or {}
    return GridAxes(
        timesteps=tuple(axes.get("timesteps") or ()),
        layers=tuple(axes.get("layers") or ()),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
    )


def resolve(session: Session, ref: str, where: str) -> str:
    """The run id that `ref` names: an exact id, a unique id prefix, or an exact name."""
    ref = str(ref).strip()
    if not ref:
        raise LookupError(f"An empty run name matches no run in {where}; give a run id or name.")
    if session.execute(select(Run.id).where(Run.id == ref)).first() is not None:
        return ref
    by_prefix = select(Run.id).where(Run.id >= ref, Run.id < ref + _PREFIX_END).limit(4)
    by_name = select(Run.id).where(Run.name == ref).limit(4)
    found = sorted(set(session.scalars(by_prefix)) | set(session.scalars(by_name)))
    if len(found) == 1:
        return found[0]
    if not found:
        raise LookupError(f"No run {ref!r} in {where}; give a run id, a unique prefix of one, or a run's exact name.")
    shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
    raise LookupError(f"{ref!r} matches several runs in {where} ({shown}); give more of the id.")
