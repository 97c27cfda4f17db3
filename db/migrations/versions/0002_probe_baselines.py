"""probe baselines and protocol on the run row

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Each probe grid carries its raw-pixel and random-init baselines (metrics probe/baseline/*) and a
protocol; the run list shows them beside the best accuracy, so they are copied onto the run row
(for a train run: those of its best probe) as best_accuracy is. Rows indexed before this revision
get them when their runs are next ingested, or at once by `ddae reindex`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("baseline_pixels", sa.Float(), nullable=True))
        batch.add_column(sa.Column("baseline_random", sa.Float(), nullable=True))
        batch.add_column(sa.Column("best_protocol", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("best_protocol")
        batch.drop_column("baseline_random")
        batch.drop_column("baseline_pixels")
