"""Runs' feed: the query behind the run table (filters, order, page, setting columns, groups, the parallel
coordinates' brushes) and the edits made in it, Qt-free."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from db import Changes, QueryError, RunSummary, Store
from db.groups import GroupRow, GroupValue
from db.metrics import METRICS
from db.paper_table import baselines_text, latex, markdown, number_text, stat_text, value_text
from db.query import parse
from db.records import SETTING_SECTIONS, STATUSES
from db.table import Axes
from ddae_core.rundir.errors import UserError

# The views read these through the feed, never the database layer itself (pyproject's import contracts).
__all__ = ["METRICS", "PAGE_SIZE", "SETTING_SECTIONS", "STATUSES", "Changes", "GroupRow", "LabRead", "LabReads",
           "LabWanted", "QueryError", "RunSummary", "RunsPager", "baselines_text", "latex", "markdown", "number_text",
           "stat_text", "value_text"]

PAGE_SIZE = 200


class RunsPager:
    """The query behind the table: filters, order and page, run by the Store, never in Python."""

    def __init__(self, store: Store, page_size: int = PAGE_SIZE):
        self.store = store
        self.page_size = page_size
        self.kind: str | None = None
        self.status: str | None = None
        self.tag: str | None = None
        self.search: str | None = None
        self.where: str | None = None           # a query line (db/query.py)
        self.order_by = "created"
        self.descending = True
        self.offset = 0
        self.total = 0
        self.brushes: dict[str, tuple] = {}     # column -> (low, high), or categories: the plot's brushes
        self._axes: tuple[tuple, Axes] | None = None    # the last axes read, and what they were read for

    def _filters(self) -> dict:
        return {"kind": self.kind, "status": self.status, "tag": self.tag, "search": self.search,
                "where": combined_where(self.where, self.brushes)}

    def set_where(self, text: str) -> str | None:
        """Filter by the query line `text` (blank: no query) from the first page; a malformed one is not used,
        and its mistake comes back as one sentence naming the column."""
        try:
            parse(text)
        except QueryError as exc:
            return exc.sentence
        self.where = text.strip() or None
        self.offset = 0
        return None

    def page(self) -> list[RunSummary]:
        self.total = self.store.count_runs(**self._filters())
        if self.offset >= self.total:
            self.offset = max(0, (self.total - 1) // self.page_size * self.page_size)
        return self.store.list_runs(**self._filters(), order_by=self.order_by, descending=self.descending,
                                    limit=self.page_size, offset=self.offset)

    def column_values(self, rows: Sequence[RunSummary], columns: Sequence[str]) -> dict:
        """run id -> {column: value} of the extra (setting and metric) columns of a page."""
        return self.store.column_values([r.id for r in rows], columns) if columns else {}

    def setting_keys(self) -> list[tuple[str, str]]:
        return self.store.setting_keys()

    def varying_keys(self) -> list[str]:
        """The settings that differ among the runs the filters list."""
        return self.store.varying_keys(**self._filters())

    def groups(self, by: Sequence[str], metrics: Sequence[str]) -> list[GroupRow]:
        return self.store.group_runs(by, metrics, **self._filters())

    def members(self, by: Sequence[str], values: Sequence[GroupValue]) -> list[RunSummary]:
        return self.store.group_members(by, values, **self._filters())

    def children(self, run_id: str) -> list[RunSummary]:
        return self.store.children(run_id)

    def axes(self, columns: Sequence[str]) -> Axes:
        """The parallel coordinates' values: every run the filters list, the brushes left out (so a brushed
        axis still shows what lies outside its brush)."""
        filters = {**self._filters(), "where": self.where}
        key = (tuple(columns), tuple(sorted((k, str(v)) for k, v in filters.items())), self.store.data_version())
        if self._axes is None or self._axes[0] != key:      # a brush alone re-reads nothing
            self._axes = (key, self.store.axes(columns, **filters))
        return self._axes[1]

    def readme_row(self, run_id: str) -> str:
        """The run's best-probe vs best-FID checkpoints as the official README's table row (UserError: not
        measured yet)."""
        return self.store.readme_row(run_id)

    def edit(self, run_id: str, column: str, value) -> None:
        if column == "tags":
            self.store.set_tags(run_id, value)
        elif column == "notes":
            self.store.set_notes(run_id, str(value))
        elif column == "name":
            self.store.rename(run_id, str(value))       # NameTaken (a ValueError) when another run has it

    def delete(self, run_id: str) -> None:
        self.store.delete_run(run_id, remove_files=True)

    def wanted(self, rows: Sequence[RunSummary], columns: Sequence[str], by: Sequence[str],
               metrics: Sequence[str]) -> LabWanted:
        """What the lab shows now, frozen for the reader thread: the page's extra columns and the groups (no `by`:
        groups hidden)."""
        return LabWanted(tuple(r.id for r in rows), tuple(columns), tuple(by), tuple(metrics),
                         tuple(self._filters().items()))


@dataclass(frozen=True)
class LabWanted:
    """The lab's reads as the GUI thread last asked for them."""

    run_ids: tuple[str, ...]            # the page's runs
    columns: tuple[str, ...]            # its setting and metric columns (none: no values to read)
    by: tuple[str, ...]                 # the groups' columns (none: the groups are not shown)
    metrics: tuple[str, ...]
    filters: tuple[tuple[str, object], ...]

    def values_key(self) -> tuple:
        return self.run_ids, self.columns

    def groups_key(self) -> tuple:
        return self.by, self.metrics, self.filters


@dataclass(frozen=True)
class LabRead:
    """What the reader thread read for `wanted`; None where nothing needed reading."""

    wanted: LabWanted
    values: dict[str, dict] | None = None       # run id -> {column: value}
    groups: list[GroupRow] | None = None
    problem: str | None = None                  # the groups' columns the database refused, in one sentence


class LabReads:
    """The lab's reads on the live hub's reader thread, never the GUI thread's: the page's column values when
    one of its runs changed, the groups after any change (a run streamed a loss, or joined a group)."""

    def __init__(self, store: Store):
        self.store = store
        self.wanted: LabWanted | None = None    # set by the GUI thread; read whole by the reader (one reference)

    def read(self, changes: Changes | None) -> LabRead | None:
        """Changes None: asked to read anew (the page or the grouping changed)."""
        wanted = self.wanted
        if wanted is None:
            return None
        touched = changes is None or changes.full or not {r.id for r in changes.runs}.isdisjoint(wanted.run_ids) \
            or not set(changes.deleted).isdisjoint(wanted.run_ids)
        values = self.store.column_values(list(wanted.run_ids), wanted.columns) \
            if wanted.columns and wanted.run_ids and touched else None
        groups, problem = None, None
        if wanted.by:
            try:
                groups = self.store.group_runs(wanted.by, wanted.metrics, **dict(wanted.filters))
            except (QueryError, UserError) as exc:
                problem = str(exc).splitlines()[0]
        if values is None and groups is None and problem is None:
            return None
        return LabRead(wanted, values, groups, problem)


def _literal(value) -> str:
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    text = str(value)
    return f"'{text}'" if "'" not in text else f'"{text}"'


def brush_query(column: str, kept: tuple) -> str:
    """A brush as a query: `lr in 0.0001..0.0005` for a range, `model_type in ('DDPM')` for categories."""
    if len(kept) == 2 and all(isinstance(v, (int, float)) for v in kept):
        return f"{column} in {_literal(kept[0])}..{_literal(kept[1])}"
    if not kept:
        return "id = ''"                    # nothing kept: no run has an empty id
    return f"{column} in ({', '.join(_literal(v) for v in kept)})"


def combined_where(where: str | None, brushes: dict[str, tuple]) -> str | None:
    """The query line and the brushes, all of them holding (None: no condition)."""
    parts = [f"({where})"] if where else []
    parts += [brush_query(column, kept) for column, kept in brushes.items()]
    return " and ".join(parts) or None
