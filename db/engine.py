"""One SQLAlchemy engine per process per database file: pragmas, transactions, migrations.

Transactions are begun by us, not by the sqlite3 module: write sessions use BEGIN IMMEDIATE so
they take SQLite's write lock up front and wait on busy_timeout. A deferred transaction that
reads first and writes later can fail at once with "database is locked" when another process
committed in between (busy_timeout cannot help it); IMMEDIATE never does.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

BUSY_TIMEOUT_MS = 30_000
CACHE_KIB = 64 * 1024                   # per connection, filled only as pages are read
# The Alembic scripts are package data of `db` (Alembic wants them as files on disk, which a wheel
# installs and an editable install leaves in the checkout).
MIGRATIONS_DIR = Path(str(resources.files("db") / "migrations"))
_BEGIN_OPTION = "ddae_begin"            # execution option: "IMMEDIATE" for write transactions


class SchemaError(Exception):
    """The database's schema is unknown to this code (written by a newer DDAE Studio)."""


def _on_connect(dbapi_connection: sqlite3.Connection, _record) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN, so we choose DEFERRED or IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")   # first: the next one may wait
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # The run table reads 10,000 runs' rows and settings per query (tens of MB): with SQLite's default 2 MB
        # page cache every filter, sort and group read them from the OS again (bench.runs_table: 1.4-1.7x slower).
        cursor.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    finally:
        cursor.close()


def _on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(_BEGIN_OPTION)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


def make_engine(path: Path) -> Engine:
    """A new engine for the SQLite file at `path` with our pragmas and BEGIN handling."""
    engine = create_engine(f"sqlite:///{path}", future=True)
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


@dataclass
class _Shared:
    engine: Engine
    sessions: sessionmaker[Session]
    users: int
    identity: tuple[int, int] | None      # (device, inode) of the file the engine's connections opened
    replaced: int = 0                     # how often the file was found deleted or replaced


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


_lock = threading.Lock()
_shared: dict[tuple[int, str], _Shared] = {}


def acquire(path: Path) -> tuple[Engine, sessionmaker[Session]]:
    """The process's engine and session factory for `path`, created (and migrated) on first use."""
    key = (os.getpid(), str(Path(path).resolve()))
    with _lock:
        shared = _shared.get(key)
        if shared is None:
            engine = make_engine(Path(key[1]))
            try:
                migrate(engine, Path(key[1]))
            except BaseException:
                engine.dispose()
                raise
            shared = _Shared(engine, sessionmaker(engine, expire_on_commit=False), 0, _identity(Path(key[1])))
            _shared[key] = shared
        shared.users += 1
        return shared.engine, shared.sessions


def release(path: Path) -> None:
    """Drop one user of `path`'s engine; the last one disposes it (closing its connections)."""
    key = (os.getpid(), str(Path(path).resolve()))
    with _lock:
        shared = _shared.get(key)
        if shared is None:
            return
        shared.users -= 1
        if shared.users <= 0:
            del _shared[key]
            shared.engine.dispose()


def reconnect(path: Path) -> None:
    """Close this process's pooled connections to `path` (replaced on disk); new ones open the new file."""
    with _lock:
        shared = _shared.get((os.getpid(), str(Path(path).resolve())))
        if shared is not None:
            shared.engine.dispose()
            shared.identity = _identity(Path(path))


def follow(path: Path, force: bool = False) -> int:
    """Reopen `path` if its file was deleted or replaced since this process opened it; how often that happened.

    A connection keeps reading and writing the file it opened, even once another process deleted it or
    renamed a new one over it: without this, a process would go on with an index nobody else sees. A
    deleted file is created again, empty and migrated; the ingester (see Ingester) fills it from the runs.
    force: reopen whatever the file's identity says (a reindex's swap may fall between a check and a connect).
    """
    key = (os.getpid(), str(Path(path).resolve()))
    with _lock:
        shared = _shared.get(key)
        if shared is None:
            return 0
        identity = _identity(Path(key[1]))
        changed = identity != shared.identity
        if changed or force:
            shared.engine.dispose()            # checked-out connections close when they are given back
            if changed or identity is None:    # a new or missing file: bring it to this code's schema
                migrate(shared.engine, Path(key[1]))
                # migrate's connections go back to the pool: the file they opened may have been swapped meanwhile
                # (a reindex renames its fresh index over a path it had moved aside), so none of them is kept.
                shared.engine.dispose()
            shared.identity = _identity(Path(key[1]))
            shared.replaced += int(changed)
        return shared.replaced


def immediate(session: Session) -> Connection:
    """Begin `session`'s transaction with BEGIN IMMEDIATE (call first thing in a write session)."""
    return session.connection(execution_options={_BEGIN_OPTION: "IMMEDIATE"})


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config built in code (no alembic.ini), pointing at this package's migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def schema_revision(engine: Engine) -> set[str]:
    """The database's current Alembic revisions (empty for a new database), read without Alembic."""
    with engine.connect() as conn:
        if conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'").first() is None:
            return set()
        return {row[0] for row in conn.exec_driver_sql("SELECT version_num FROM alembic_version")}


def _check_known(path: Path, current: set[str], script: ScriptDirectory) -> None:
    known = {rev.revision for rev in script.walk_revisions()}
    unknown = sorted(current - known)
    if unknown:
        raise SchemaError(
            f"studio.sqlite at {path} was written by a newer DDAE Studio (schema {', '.join(unknown)}); "
            "upgrade DDAE Studio or open another workspace."
        )


def migrate(engine: Engine, path: Path) -> None:
    """Bring the database to this code's schema; refuse one from a newer schema (SchemaError)."""
    script = ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    try:
        current = schema_revision(engine)
    except Exception as exc:   # not a database at all, a corrupt one, or no room for its WAL
        reason = (str(getattr(exc, "orig", None) or exc).splitlines() or [exc.__class__.__name__])[0]
        if "full" in reason or "I/O" in reason:
            # A full disk is no fault of the file; a rebuild would not fit either (see ddae_core/cli storage_error).
            raise OSError(errno.ENOSPC if "full" in reason else errno.EIO, reason, str(path)) from exc
        raise SchemaError(
            f"studio.sqlite at {path} cannot be read ({reason}); "
            "rebuild it from the run folders with `ddae reindex`."
        ) from exc
    _check_known(path, current, script)
    if current == heads:
        return
    # Upgrade under the write lock so two processes opening a new workspace do not race;
    # the second one waits, then finds the schema current and does nothing.
    with engine.connect() as conn:
        conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        with conn.begin():
            current = set(MigrationContext.configure(conn).get_current_heads())
            _check_known(path, current, script)
            if current != heads:
                command.upgrade(alembic_config(conn), "head")
