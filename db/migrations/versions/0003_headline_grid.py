"""the grid run a row's headline comes from

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

best_accuracy, its baselines and its protocol now come from one grid run, named in best_grid. Before,
a train run's baselines and protocol could come from the best probe of the whole workspace (another
model's), so every train row is filled again here from its own best probe child, as db/queries.py
headline_of does on ingest.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_CHILD = ("(SELECT c.{column} FROM runs AS c WHERE c.parent_run = runs.id AND c.kind = 'probe' "
          "AND c.best_accuracy IS NOT NULL ORDER BY c.best_accuracy DESC, c.id DESC LIMIT 1)")
_OWN_GRID = ("EXISTS (SELECT 1 FROM grid_cells WHERE grid_cells.run = runs.id) OR EXISTS (SELECT 1 FROM "
             "metric_summary WHERE metric_summary.run = runs.id AND metric_summary.key = 'probe/accuracy')")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("best_grid", sa.String(), nullable=True))
    columns = ("best_accuracy", "baseline_pixels", "baseline_random", "best_protocol")
    op.execute(f"UPDATE runs SET best_grid = id WHERE {_OWN_GRID}")
    op.execute("UPDATE runs SET " + ", ".join(f"{c} = {_CHILD.format(column=c)}" for c in columns)
               + f", best_grid = {_CHILD.format(column='id')} WHERE NOT ({_OWN_GRID})")


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("best_grid")
