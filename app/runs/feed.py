"""Runs' feed: the query behind the run table (filters, order, page) and the edits made in it, Qt-free."""

from __future__ import annotations

from db import Changes, QueryError, RunSummary, Store
from db.query import parse
from db.records import STATUSES

__all__ = ["PAGE_SIZE", "STATUSES", "Changes", "RunSummary", "RunsPager"]

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

    def _filters(self) -> dict:
        return {"kind": self.kind, "status": self.status, "tag": self.tag, "search": self.search, "where": self.where}

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

    def edit(self, run_id: str, column: str, value) -> None:
        if column == "tags":
            self.store.set_tags(run_id, value)
        elif column == "notes":
            self.store.set_notes(run_id, str(value))
        elif column == "name":
            self.store.rename(run_id, str(value))       # NameTaken (a ValueError) when another run has it

    def delete(self, run_id: str) -> None:
        self.store.delete_run(run_id, remove_files=True)
