"""Single-use links that open a subscriber's data (download or erasure), mailed to the address.

A preferences link travels in every digest, so whoever holds a forwarded copy holds it too.
The data itself is only reached through a fresh link sent to the address on request, valid
for an hour and good for one action, the way magic sign-in links work.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from newsletter.store import schema, utcnow

D = schema.data_links
VALID_FOR = timedelta(hours=1)


def create(conn: sa.Connection, subscriber_id: int, now: datetime | None = None) -> tuple[int, datetime]:
    """A new link for `subscriber_id`: (its id, when it expires)."""
    now = now or utcnow()
    expires = now + VALID_FOR
    link_id = conn.execute(sa.insert(D).values(subscriber_id=subscriber_id, created_at=now, expires_at=expires)
                           .returning(D.c.id)).scalar_one()
    return link_id, expires


def open_(conn: sa.Connection, link_id: int, now: datetime | None = None) -> int | None:
    """The subscriber an unused, unexpired link opens, or None."""
    now = now or utcnow()
    return conn.execute(sa.select(D.c.subscriber_id).where(
        D.c.id == link_id, D.c.used_at.is_(None), D.c.expires_at > now)).scalar_one_or_none()


def use(conn: sa.Connection, link_id: int, now: datetime | None = None) -> int | None:
    """Spend the link: the subscriber it opens, or None when it was used, expired or never existed.
    Two concurrent uses cannot both succeed: the update only matches an unused link."""
    subscriber_id = open_(conn, link_id, now)
    if subscriber_id is None:
        return None
    spent = conn.execute(sa.update(D).where(D.c.id == link_id, D.c.used_at.is_(None))
                         .values(used_at=now or utcnow())).rowcount
    return subscriber_id if spent == 1 else None


def purge(conn: sa.Connection, now: datetime | None = None) -> int:
    return conn.execute(sa.delete(D).where(D.c.expires_at <= (now or utcnow()))).rowcount
