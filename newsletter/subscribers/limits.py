"""Abuse limits counted in the store, so every `serve` process (and every machine) shares them.

Subjects (a client address, an email address) are kept as a keyed hash: the table says how
often something happened, never to whom.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

import sqlalchemy as sa

from newsletter.store import schema

R = schema.rate_hits
# Buckets: what is counted, and over which window.
SUBSCRIBE_CLIENT = "subscribe-client"  # subscribe POSTs per client address, per hour
CONFIRM_ADDRESS = "confirm-address"  # confirmation emails per address, per day
DATA_ADDRESS = "data-address"  # data-rights emails per address, per day
WINDOWS = {SUBSCRIBE_CLIENT: timedelta(hours=1), CONFIRM_ADDRESS: timedelta(days=1),
           DATA_ADDRESS: timedelta(days=1)}


def subject_key(key: bytes, value: str) -> str:
    return hmac.new(key, b"limit\0" + value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def take(conn: sa.Connection, bucket: str, subject: str, limit: int, now: datetime) -> bool:
    """Count one more action for `subject` and say whether it stays within `limit` in the window.

    The hit is recorded either way, so a client that keeps pushing past the limit stays over it.
    """
    conn.execute(sa.insert(R).values(bucket=bucket, subject=subject, at=now))
    count = conn.execute(sa.select(sa.func.count()).select_from(R).where(
        R.c.bucket == bucket, R.c.subject == subject, R.c.at > now - WINDOWS[bucket])).scalar_one()
    return count <= limit


def count(conn: sa.Connection, bucket: str, subject: str, now: datetime) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(R).where(
        R.c.bucket == bucket, R.c.subject == subject, R.c.at > now - WINDOWS[bucket])).scalar_one()


def record(conn: sa.Connection, bucket: str, subject: str, now: datetime) -> None:
    conn.execute(sa.insert(R).values(bucket=bucket, subject=subject, at=now))


def purge(conn: sa.Connection, now: datetime) -> int:
    """Forget hits older than the longest window."""
    return conn.execute(sa.delete(R).where(R.c.at <= now - max(WINDOWS.values()))).rowcount
