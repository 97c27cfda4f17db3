"""Alembic environment: always given a connection by db.engine (no alembic.ini, no URL)."""

from __future__ import annotations

from alembic import context

from db.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("DDAE Studio migrations run through db.engine.migrate(), which passes a connection.")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,              # SQLite alters tables by copy-and-move
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
