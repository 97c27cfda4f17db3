"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-26

The tables of db/models.py. studio_state gets its one row here, with a random generation so a
rebuilt database (ddae reindex) is told apart from the one it replaced.
"""

from __future__ import annotations

import secrets
import time

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("deleted_runs",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deleted_runs"))
    )
    op.create_table("runs",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("data", sa.String(), nullable=True),
        sa.Column("parent_run", sa.String(), nullable=True),
        sa.Column("parent_ref", sa.String(), nullable=True),
        sa.Column("parent_checkpoint", sa.String(), nullable=True),
        sa.Column("created", sa.Float(), nullable=True),
        sa.Column("started", sa.Float(), nullable=True),
        sa.Column("finished", sa.Float(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(), nullable=True),
        sa.Column("device", sa.String(), nullable=True),
        sa.Column("device_request", sa.String(), server_default="auto", nullable=False),
        sa.Column("gpus", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), server_default="[]", nullable=False),
        sa.Column("notes", sa.Text(), server_default="", nullable=False),
        sa.Column("progress_done", sa.Integer(), nullable=True),
        sa.Column("progress_total", sa.Integer(), nullable=True),
        sa.Column("progress_stage", sa.String(), nullable=True),
        sa.Column("progress_time", sa.Float(), nullable=True),
        sa.Column("grid_axes", sa.Text(), nullable=True),
        sa.Column("best_accuracy", sa.Float(), nullable=True),
        sa.Column("last_loss", sa.Float(), nullable=True),
        sa.Column("events_offset", sa.Integer(), server_default="0", nullable=False),
        sa.Column("events_size", sa.Integer(), server_default="0", nullable=False),
        sa.Column("events_mtime", sa.Float(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("device_request IN ('auto', 'cpu', 'cuda')", name=op.f("ck_runs_device_request")),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'interrupted')",
                           name=op.f("ck_runs_status")),
        sa.ForeignKeyConstraint(["parent_run"], ["runs.id"], name=op.f("fk_runs_parent_run_runs"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs"))
    )
    op.create_index("ix_runs_created", "runs", ["created", "id"])
    op.create_index("ix_runs_kind", "runs", ["kind"])
    op.create_index("ix_runs_name", "runs", ["name"])
    op.create_index("ix_runs_parent_ref", "runs", ["parent_ref"])
    op.create_index("ix_runs_parent_run", "runs", ["parent_run"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_version", "runs", ["version"])

    op.create_table("studio_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_studio_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studio_state"))
    )
    op.create_table("artifacts",
        sa.Column("run", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("time", sa.Float(), nullable=True),
        sa.CheckConstraint("kind IN ('checkpoint', 'image', 'figure', 'file')", name=op.f("ck_artifacts_kind")),
        sa.ForeignKeyConstraint(["run"], ["runs.id"], name=op.f("fk_artifacts_run_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run", "path", name=op.f("pk_artifacts")),
        sqlite_with_rowid=False
    )
    op.create_index("ix_artifacts_run_kind_step", "artifacts", ["run", "kind", "step"])

    op.create_table("grid_cells",
        sa.Column("run", sa.String(), nullable=False),
        sa.Column("layer", sa.String(), nullable=False),
        sa.Column("timestep", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("time", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["run"], ["runs.id"], name=op.f("fk_grid_cells_run_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run", "layer", "timestep", name=op.f("pk_grid_cells")),
        sqlite_with_rowid=False
    )
    op.create_table("metric_points",
        sa.Column("run", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("time", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["run"], ["runs.id"], name=op.f("fk_metric_points_run_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run", "key", "step", name=op.f("pk_metric_points")),
        sqlite_with_rowid=False
    )
    op.create_table("metric_blocks",
        sa.Column("run", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("first_step", sa.Integer(), nullable=False),
        sa.Column("last_step", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("step_bytes", sa.LargeBinary(), nullable=False),
        sa.Column("value_bytes", sa.LargeBinary(), nullable=False),
        sa.Column("time_bytes", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["run"], ["runs.id"], name=op.f("fk_metric_blocks_run_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run", "key", "first_step", name=op.f("pk_metric_blocks"))
    )
    op.create_table("metric_summary",
        sa.Column("run", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("latest_step", sa.Integer(), nullable=False),
        sa.Column("latest_value", sa.Float(), nullable=True),
        sa.Column("latest_time", sa.Float(), nullable=True),
        sa.Column("best_step", sa.Integer(), nullable=True),
        sa.Column("best_value", sa.Float(), nullable=True),
        sa.Column("min", sa.Float(), nullable=True),
        sa.Column("max", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["run"], ["runs.id"], name=op.f("fk_metric_summary_run_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run", "key", name=op.f("pk_metric_summary")),
        sqlite_with_rowid=False
    )
    op.create_table("queue",
        sa.Column("run", sa.String(), nullable=False),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("gpus", sa.Integer(), server_default="0", nullable=False),
        sa.Column("device_request", sa.String(), server_default="auto", nullable=False),
        sa.Column("enqueued", sa.Float(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.CheckConstraint("device_request IN ('auto', 'cpu', 'cuda')", name=op.f("ck_queue_device_request")),
        sa.CheckConstraint("gpus >= 0", name=op.f("ck_queue_gpus")),
        sa.ForeignKeyConstraint(["run"], ["runs.id"], name=op.f("fk_queue_run_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run", name=op.f("pk_queue"))
    )
    op.create_index("ix_queue_order", "queue", ["priority", "enqueued", "seq"])

    op.execute(
        sa.text("INSERT INTO studio_state (id, generation, version) VALUES (1, :generation, 0)")
        .bindparams(generation=f"{int(time.time())}-{secrets.token_hex(4)}")
    )


def downgrade() -> None:
    op.drop_index("ix_queue_order", table_name="queue")
    op.drop_table("queue")
    op.drop_table("metric_summary")
    op.drop_table("metric_blocks")
    op.drop_table("metric_points")
    op.drop_table("grid_cells")
    op.drop_index("ix_artifacts_run_kind_step", table_name="artifacts")
    op.drop_table("artifacts")
    op.drop_table("studio_state")
    op.drop_index("ix_runs_version", table_name="runs")
    op.drop_index("ix_runs_status", table_name="runs")
    op.drop_index("ix_runs_parent_run", table_name="runs")
    op.drop_index("ix_runs_parent_ref", table_name="runs")
    op.drop_index("ix_runs_name", table_name="runs")
    op.drop_index("ix_runs_kind", table_name="runs")
    op.drop_index("ix_runs_created", table_name="runs")
    op.drop_table("runs")
    op.drop_table("deleted_runs")
