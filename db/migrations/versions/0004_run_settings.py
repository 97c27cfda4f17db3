"""every setting of a run's spec as a typed row

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

The run table shows any key of a run's resolved spec as a column, and lists the keys that differ among
runs; both read run_settings (one row per run and key, db/settings.py) instead of parsing every spec.
Runs indexed before this revision get their rows here, from the spec JSON kept on their run row.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from db.settings import setting_rows

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SECTIONS = ("network", "diffusion", "training", "data", "evaluation")


def upgrade() -> None:
    table = op.create_table(
        "run_settings",
        sa.Column("run", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("section", sa.String(), nullable=False),
        sa.Column("number", sa.Float(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.CheckConstraint("section IN (" + ", ".join(repr(s) for s in SECTIONS) + ")",
                           name=op.f("ck_run_settings_section")),
        sa.ForeignKeyConstraint(["run"], ["runs.id"], name=op.f("fk_run_settings_run_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run", "key", name=op.f("pk_run_settings")),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_run_settings_key_number_text", "run_settings", ["key", "number", "text"])
    runs = op.get_bind().execute(sa.text("SELECT id, kind, spec FROM runs")).all()
    rows = [row for run_id, kind, spec in runs for row in setting_rows(run_id, json.loads(spec or "{}"), kind)]
    if rows:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    op.drop_index("ix_run_settings_key_number_text", table_name="run_settings")
    op.drop_table("run_settings")
