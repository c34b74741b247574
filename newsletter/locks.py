"""Named leases held in the store, so two processes or machines never do one job at once.

A lease is a row in `locks`: taking it inserts the row, or takes over a row whose owner
let it expire (a crashed process); both happen in one statement (INSERT ... ON CONFLICT
DO UPDATE ... WHERE expired), so two contenders on SQLite or PostgreSQL never both win.
A live owner's row is never touched by anyone else. Times are the processes' clocks in
UTC: machines sharing a store need synchronised clocks (NTP), and a TTL well above any skew.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.errors import LockedError
from newsletter.store import schema, utcnow


def owner_id(role: str) -> str:
    """A name unique to this call site's holder: role, host, process, thread, and a nonce."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"


def _upsert(dialect: str):
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _describe_holder(conn: sa.Connection, name: str) -> str:
    row = conn.execute(sa.select(schema.locks).where(schema.locks.c.name == name)).first()
    if row is None:
        return f"lock {name!r} was released meanwhile"
    return f"lock {name!r} is held by {row.owner} until {row.expires_at.isoformat(timespec='seconds')}"


def acquire(engine: sa.Engine, name: str, owner: str, ttl: timedelta) -> datetime:
    """Take the lease (new, expired, or already ours) and return its expiry; else LockedError."""
    now = utcnow()
    expires = now + ttl
    locks = schema.locks
    insert = _upsert(engine.dialect.name)(locks).values(name=name, owner=owner, acquired_at=now, expires_at=expires)
    statement = insert.on_conflict_do_update(
        index_elements=[locks.c.name],
        set_={"owner": owner, "acquired_at": now, "expires_at": expires},
        where=sa.or_(locks.c.expires_at < now, locks.c.owner == owner),
    )
    with engine.begin() as conn:
        conn.execute(statement)
        holder = conn.execute(sa.select(locks.c.owner).where(locks.c.name == name)).scalar_one()
        if holder != owner:
            raise LockedError(_describe_holder(conn, name))
    return expires


def release(engine: sa.Engine, name: str, owner: str) -> None:
    """Give the lease up (only if still ours: an expired lease may have a new owner)."""
    with engine.begin() as conn:
        conn.execute(schema.locks.delete().where(schema.locks.c.name == name, schema.locks.c.owner == owner))


class Lease:
    """A held lease: `renew` extends it, and proves it is still ours inside a caller's transaction."""

    def __init__(self, engine: sa.Engine, name: str, owner: str, ttl: timedelta, expires_at: datetime) -> None:
        self.engine = engine
        self.name = name
        self.owner = owner
        self.ttl = ttl
        self.expires_at = expires_at

    def renew(self, conn: sa.Connection | None = None) -> None:
        """Extend the lease by its TTL, or raise LockedError when it expired and someone took it.

        Given `conn`, the renewal joins the caller's transaction: on PostgreSQL that row stays
        locked until the caller commits, so nobody can take the lease over while the work that
        depends on it is being committed (a fencing check, not just a hope).
        """
        if conn is None:
            with self.engine.begin() as own:
                self.renew(own)
            return
        expires = utcnow() + self.ttl
        locks = schema.locks
        result = conn.execute(
            locks.update().where(locks.c.name == self.name, locks.c.owner == self.owner).values(expires_at=expires)
        )
        if result.rowcount != 1:
            raise LockedError(f"lost the lease {self.name!r}: it expired and " + _describe_holder(conn, self.name))
        self.expires_at = expires


def _keep_renewed(held: Lease, stop: threading.Event) -> None:
    """Renew every third of the TTL until stopped, so long work keeps a short lease alive."""
    log = logging.getLogger(__name__)
    while not stop.wait(held.ttl.total_seconds() / 3):
        try:
            held.renew()
        except LockedError as exc:
            log.error("lease lost", extra={"lock": held.name, "detail": str(exc)})
            return
        except sa.exc.OperationalError as exc:
            # A busy SQLite store: the next beat tries again, well before the lease runs out.
            log.warning("lease renewal failed", extra={"lock": held.name, "detail": str(exc.orig)})


@contextmanager
def lease(engine: sa.Engine, name: str, owner: str, ttl: timedelta, *, heartbeat: bool = False) -> Iterator[Lease]:
    """Hold the named lease for the block; LockedError at once when another live owner holds it.

    With `heartbeat`, a thread renews it while the block runs, so work of unknown length
    (a collect) holds a short TTL, and a crashed holder frees it within that TTL.
    """
    held = Lease(engine, name, owner, ttl, acquire(engine, name, owner, ttl))
    stop = threading.Event()
    beat = threading.Thread(target=_keep_renewed, args=(held, stop), name=f"lease {name}", daemon=True)
    if heartbeat:
        beat.start()
    try:
        yield held
    finally:
        if heartbeat:
            stop.set()
            beat.join()
        release(engine, name, owner)
