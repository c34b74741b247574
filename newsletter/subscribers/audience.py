"""Who receives a mailing: streamed from the store, never held in memory all at once."""

from __future__ import annotations

from typing import Collection, Iterator, Sequence

import sqlalchemy as sa

from newsletter.config import EditionConfig
from newsletter.recipients import Recipient
from newsletter.store import schema

S = schema.subscribers
X = schema.suppressions
_BATCH = 2000


def audience(conn: sa.Connection, edition: EditionConfig, countries: Collection[str]) -> Iterator[Recipient]:
    """Active, unsuppressed subscribers of `edition`'s language who want it, ordered by id.

    A subscriber wants it when their editions list is empty or names the edition, and their
    countries of interest are empty or meet `countries` (the mailing's brief countries).
    """
    wanted = set(countries)
    for recipient, chosen in readers(conn, edition):
        if not chosen or not wanted.isdisjoint(chosen):
            yield recipient


def readers(conn: sa.Connection, edition: EditionConfig) -> Iterator[tuple[Recipient, Sequence[str]]]:
    """Active, unsuppressed subscribers of `edition`'s language who want the edition, with their
    countries of interest (empty: every country), ordered by id; per-reader copies start here.

    The JSON lists are checked here rather than in SQL so SQLite and PostgreSQL agree.
    """
    query = (
        sa.select(S.c.id, S.c.email, S.c.name, S.c.language, S.c.editions, S.c.countries)
        .where(S.c.status == "active", S.c.language == edition.language,
               ~sa.exists().where(X.c.email == S.c.email))
        .order_by(S.c.id)
    )
    # Options on the statement, not the connection: Connection.execution_options() changes the
    # caller's connection in place, and its next INSERT would become a server-side cursor.
    result = conn.execute(query.execution_options(stream_results=True, yield_per=_BATCH))
    for row in result:
        if row.editions and edition.name not in row.editions:
            continue
        yield Recipient(row.id, row.email, row.name, row.language), tuple(row.countries or ())
