"""Opening the store and keeping its schema current with Alembic."""

from __future__ import annotations

import importlib
import re
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


# `revision = "0008"` and `down_revision = "0007"` as each migration file states them.
_REVISION_LINE = re.compile(r"""^(revision|down_revision)\s*(?::[^=]*)?=\s*['"]([^'"]+)['"]""", re.M)


def _head_of_files() -> str | None:
    """The newest revision of the migration files when they form a single chain; None when they
    do not, or say it in a way this reading does not follow (Alembic then decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        named = dict(m.groups() for m in _REVISION_LINE.finditer(path.read_text(encoding="utf-8")))
        if "revision" not in named:
            return None
        revisions.add(named["revision"])
        if "down_revision" in named:
            parents.add(named["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _stored_revision(engine: sa.Engine) -> str | None:
    """The store's revision when it has exactly one, else None (new, or branched)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    except sa.exc.DBAPIError:
        return None
    return rows[0] if len(rows) == 1 else None


def upgrade(engine: sa.Engine) -> tuple[str | None, str]:
    """Apply pending migrations; returns (revision before, revision after)."""
    # Every command opens the store through here. A store already at the files' head needs no
    # Alembic: importing it (with Mako and every migration script) costs 8 MB and a third of a
    # second, and `newsletter send` would carry them while its workers run.
    head = _head_of_files()
    if head is not None and _stored_revision(engine) == head:
        return head, head
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
