"""DDAE Studio's database layer: the SQLite index of a workspace's run folders.

No Qt, no torch: SQLAlchemy 2.0, Alembic, YAML and the standard library. Views get plain records.
"""

from .engine import SchemaError
from .export import export_run_csv
from .ingest import Ingester, IngestLockError
from .names import NameTaken
from .query import QueryError
from .records import (
    Artifact,
    Changes,
    ChangeToken,
    GridAxes,
    GridCell,
    History,
    IngestStats,
    MetricSummary,
    QueueEntry,
    RunRecord,
    RunSummary,
)
from .reindex import rebuild_by_ingester, reindex
from .store import Store

__all__ = [
    "Artifact", "ChangeToken", "Changes", "GridAxes", "GridCell", "History", "IngestLockError",
    "IngestStats", "Ingester", "MetricSummary", "NameTaken", "QueryError", "QueueEntry", "RunRecord", "RunSummary",
    "SchemaError", "Store", "export_run_csv", "rebuild_by_ingester", "reindex",
]
