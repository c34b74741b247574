"""Opening the store and keeping its schema current with Alembic."""

from __future__ import annotations

import importlib
from datetime import datetime, timezone
from pathlib import Path

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from newsletter.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def dialect_insert(conn: sa.Connection, table: sa.Table) -> Any:
    """An INSERT with the store's own clauses (`on_conflict_do_nothing`), from the dialect package
    the connection already loaded: importing `sqlalchemy.dialects.postgresql` costs a SQLite
    sender 3 MB (it brings asyncpg's, pg8000's and psycopg2's dialects too), and the reverse 0.5."""
    return importlib.import_module(f"sqlalchemy.dialects.{conn.dialect.name}").insert(table)


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    path = url.database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 60})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's begin event own transactions (pysqlite's own handling defers BEGIN).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front, so two processes never deadlock upgrading
        # a read lock to a write lock (SQLITE_BUSY that busy_timeout cannot resolve).
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_engine(url: str) -> sa.Engine:
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"store.url = {url!r}: not a database URL ({exc})") from exc
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=5)
    raise StoreError(f"store.url = {url!r}: expected a sqlite:// or postgresql:// URL")


# Alembic (and Mako under it) is imported only where the schema is checked or migrated: a send
# worker opens the store with `create_engine` and needs neither.
def _alembic_config(engine: sa.Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def _current_and_head(engine: sa.Engine) -> tuple[str | None, str]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(engine))
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, script.get_current_head()


def upgrade(engine: sa.Engine) -> tuple[str | None, str]:
    """Apply pending migrations; returns (revision before, revision after)."""
    try:
        before, head = _current_and_head(engine)
        if before != head:
            from alembic import command

            command.upgrade(_alembic_config(engine), "head")
    except sa.exc.OperationalError as exc:
        raise StoreError(f"cannot open or migrate the store {engine.url!r}: {exc.orig}") from exc
    return before, head


def open_store(url: str, *, migrate: bool = True) -> sa.Engine:
    """An engine for the store, migrated to the newest schema on first use."""
    engine = create_engine(url)
    if migrate:
        upgrade(engine)
    return engine
