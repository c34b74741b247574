"""The click and open counters: per mailing, link (0: the open pixel), day and verdict.

Nothing here names a reader: a request adds one to a counter and is forgotten. Requests that
are not people are counted apart (`head`, `bot`, `scanner`), so the operator can see how much
was filtered.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.store import schema

COUNTED = "counted"
FILTERED = ("head", "bot", "scanner")
VERDICTS = (COUNTED, *FILTERED)

t = schema.tracking_counts


def add(conn: sa.Connection, mailing_id: int, link_no: int, day: date, verdict: str, n: int = 1) -> None:
    """Add `n` (which may be negative, to re-file a request) to one counter."""
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(t).values(
        mailing_id=mailing_id, link_no=link_no, day=day, verdict=verdict, count=n)
    conn.execute(insert.on_conflict_do_update(
        index_elements=[t.c.mailing_id, t.c.link_no, t.c.day, t.c.verdict],
        set_={"count": t.c.count + insert.excluded.count},
    ))
