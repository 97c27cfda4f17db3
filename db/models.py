"""The SQLite schema as SQLAlchemy 2.0 models; Alembic migrations in db/migrations mirror it.

Child tables keyed by (run, ...) are WITHOUT ROWID so a run's curve is one contiguous range of
the primary key: a history load is a single index range scan, and re-ingesting a point replaces
it (INSERT ... ON CONFLICT DO UPDATE) instead of duplicating it.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ddae_core.rundir import DEVICE_REQUESTS

from .records import ARTIFACT_KINDS, SETTING_SECTIONS, STATUSES

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _run_fk() -> ForeignKey:
    return ForeignKey("runs.id", ondelete="CASCADE")


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(_one_of("status", STATUSES), name="status"),
        CheckConstraint(_one_of("device_request", DEVICE_REQUESTS), name="device_request"),
        Index("ix_runs_created", "created", "id"),   # the default order, ties by id
        Index("ix_runs_status", "status"),
        Index("ix_runs_kind", "kind"),
        Index("ix_runs_name", "name"),
        Index("ix_runs_parent_run", "parent_run"),
        Index("ix_runs_parent_ref", "parent_ref"),
        Index("ix_runs_version", "version"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)          # the run-id (folder name)
    name: Mapped[str] = mapped_column(String)
    kind: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    spec: Mapped[str] = mapped_column(Text)                             # spec.yaml as JSON text
    data: Mapped[str | None] = mapped_column(String)
    parent_run: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    parent_ref: Mapped[str | None] = mapped_column(String)              # spec's parent, kept after delete
    parent_checkpoint: Mapped[str | None] = mapped_column(String)
    created: Mapped[float | None] = mapped_column(Float)                # Unix seconds
    started: Mapped[float | None] = mapped_column(Float)
    finished: Mapped[float | None] = mapped_column(Float)
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String)
    device: Mapped[str | None] = mapped_column(String)
    device_request: Mapped[str] = mapped_column(String, server_default="auto")
    gpus: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[str] = mapped_column(Text, server_default="[]")        # JSON list of strings
    notes: Mapped[str] = mapped_column(Text, server_default="")
    progress_done: Mapped[int | None] = mapped_column(Integer)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    progress_stage: Mapped[str | None] = mapped_column(String)
    progress_time: Mapped[float | None] = mapped_column(Float)
    grid_axes: Mapped[str | None] = mapped_column(Text)                 # JSON {timesteps, layers, labels}
    # Copied from grid_cells and metric_summary by the ingester, so the run list reads one table.
    best_accuracy: Mapped[float | None] = mapped_column(Float)          # probe/accuracy, else max cell
    last_loss: Mapped[float | None] = mapped_column(Float)              # latest loss/train
    # The baselines and protocol of the grid best_accuracy comes from (a train run: its best probe's), and
    # that grid run's id: all from one grid (db/queries.py headline_of), never mixed.
    baseline_pixels: Mapped[float | None] = mapped_column(Float)        # probe/baseline/pixels
    baseline_random: Mapped[float | None] = mapped_column(Float)        # probe/baseline/random_init
    best_protocol: Mapped[str | None] = mapped_column(String)           # fast | official | standardized
    best_grid: Mapped[str | None] = mapped_column(String)               # the run id of that grid
    events_offset: Mapped[int] = mapped_column(Integer, server_default="0")   # bytes ingested
    events_size: Mapped[int] = mapped_column(Integer, server_default="0")     # file size last seen
    events_mtime: Mapped[float | None] = mapped_column(Float)
    version: Mapped[int] = mapped_column(Integer, server_default="0")  # studio_state.version of last change


class RunSetting(Base):
    """One setting of a run's resolved spec (db/settings.py): a number (booleans 1/0) or a text (lists as JSON)."""

    __tablename__ = "run_settings"
    __table_args__ = (
        CheckConstraint(_one_of("section", SETTING_SECTIONS), name="section"),
        Index("ix_run_settings_key_number_text", "key", "number", "text"),   # the chooser, "only what varies"
        {"sqlite_with_rowid": False},
    )

    run: Mapped[str] = mapped_column(_run_fk(), primary_key=True)
    key: Mapped[str] = mapped_column(String, primary_key=True)          # the query line's name: diffusion.n_T
    section: Mapped[str] = mapped_column(String)                        # network | diffusion | training | ...
    number: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(Text)


class MetricPoint(Base):
    __tablename__ = "metric_points"
    __table_args__ = {"sqlite_with_rowid": False}

    run: Mapped[str] = mapped_column(_run_fk(), primary_key=True)
    key: Mapped[str] = mapped_column(String, primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)                  # NULL = NaN
    time: Mapped[float | None] = mapped_column(Float)


class MetricBlock(Base):
    """BLOCK_POINTS consecutive points of one curve packed as arrays (db/blocks.py): a read cache."""

    __tablename__ = "metric_blocks"     # a rowid table: its rows are large

    run: Mapped[str] = mapped_column(_run_fk(), primary_key=True)
    key: Mapped[str] = mapped_column(String, primary_key=True)
    first_step: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_step: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    step_bytes: Mapped[bytes] = mapped_column(LargeBinary)      # int64, little-endian
    value_bytes: Mapped[bytes] = mapped_column(LargeBinary)     # float64, NaN for null
    time_bytes: Mapped[bytes] = mapped_column(LargeBinary)      # float64, NaN for null


class MetricSummaryRow(Base):
    __tablename__ = "metric_summary"
    __table_args__ = {"sqlite_with_rowid": False}

    run: Mapped[str] = mapped_column(_run_fk(), primary_key=True)
    key: Mapped[str] = mapped_column(String, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    latest_step: Mapped[int] = mapped_column(Integer)
    latest_value: Mapped[float | None] = mapped_column(Float)
    latest_time: Mapped[float | None] = mapped_column(Float)
    best_step: Mapped[int | None] = mapped_column(Integer)
    best_value: Mapped[float | None] = mapped_column(Float)
    min: Mapped[float | None] = mapped_column(Float)
    max: Mapped[float | None] = mapped_column(Float)


class GridCellRow(Base):
    __tablename__ = "grid_cells"
    __table_args__ = {"sqlite_with_rowid": False}

    run: Mapped[str] = mapped_column(_run_fk(), primary_key=True)
    layer: Mapped[str] = mapped_column(String, primary_key=True)
    timestep: Mapped[int] = mapped_column(Integer, primary_key=True)
    accuracy: Mapped[float | None] = mapped_column(Float)
    time: Mapped[float | None] = mapped_column(Float)


class ArtifactRow(Base):
    __tablename__ = "artifacts"
    __table_args__ = (
        CheckConstraint(_one_of("kind", ARTIFACT_KINDS), name="kind"),
        Index("ix_artifacts_run_kind_step", "run", "kind", "step"),
        {"sqlite_with_rowid": False},
    )

    run: Mapped[str] = mapped_column(_run_fk(), primary_key=True)
    path: Mapped[str] = mapped_column(String, primary_key=True)         # relative to the run dir
    kind: Mapped[str] = mapped_column(String)
    key: Mapped[str | None] = mapped_column(String)
    step: Mapped[int | None] = mapped_column(Integer)
    time: Mapped[float | None] = mapped_column(Float)


class QueueRow(Base):
    __tablename__ = "queue"
    __table_args__ = (
        CheckConstraint(_one_of("device_request", DEVICE_REQUESTS), name="device_request"),
        CheckConstraint("gpus >= 0", name="gpus"),
        Index("ix_queue_order", "priority", "enqueued", "seq"),
    )

    run: Mapped[str] = mapped_column(_run_fk(), primary_key=True)
    priority: Mapped[int] = mapped_column(Integer, server_default="0")   # higher first
    gpus: Mapped[int] = mapped_column(Integer, server_default="0")       # 0 = CPU
    device_request: Mapped[str] = mapped_column(String, server_default="auto")
    enqueued: Mapped[float] = mapped_column(Float)                       # Unix seconds
    seq: Mapped[int] = mapped_column(Integer)                            # FIFO tie-break


class DeletedRun(Base):
    """Runs removed from the index: the ingester does not register their folders again."""

    __tablename__ = "deleted_runs"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[float] = mapped_column(Float)


class StudioState(Base):
    """One row: a change counter bumped by every write, and this database file's generation."""

    __tablename__ = "studio_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[str] = mapped_column(String)
    version: Mapped[int] = mapped_column(Integer, server_default="0")
