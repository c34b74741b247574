"""Who receives a mailing: streamed from the store, never held in memory all at once.

A mailing's deliveries are written by the store itself (one INSERT ... SELECT from the
subscribers), never row by row through Python: readers are grouped by what decides their copy
(the editions and countries they chose, stored as JSON text), each group is decided once in
Python (`groups`, then a `Plan` per group), and the plan is joined back to the subscribers in
SQL (`planned_rows`). A million readers make a handful of groups.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Collection, Iterator, Sequence

import sqlalchemy as sa

from newsletter.config import EditionConfig
from newsletter.recipients import Recipient
from newsletter.store import schema

S = schema.subscribers
X = schema.suppressions
_BATCH = 2000


def _eligible(edition: EditionConfig) -> sa.ColumnElement[bool]:
    """Active subscribers of the edition's language whose address is not suppressed."""
    return sa.and_(S.c.status == "active", S.c.language == edition.language,
                   ~sa.exists().where(X.c.email == S.c.email))


def _wants(editions: Sequence[str] | None, edition: EditionConfig) -> bool:
    """Whether a reader with this editions list wants `edition` (empty: every edition of the language)."""
    return not editions or edition.name in editions


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
    countries of interest (empty: every country), ordered by id.

    The JSON lists are checked here rather than in SQL so SQLite and PostgreSQL agree.
    """
    query = (
        sa.select(S.c.id, S.c.email, S.c.name, S.c.language, S.c.editions, S.c.countries)
        .where(_eligible(edition)).order_by(S.c.id)
    )
    # Options on the statement, not the connection: Connection.execution_options() changes the
    # caller's connection in place, and its next INSERT would become a server-side cursor.
    result = conn.execute(query.execution_options(stream_results=True, yield_per=_BATCH))
    for row in result:
        if not _wants(row.editions, edition):
            continue
        yield Recipient(row.id, row.email, row.name, row.language), tuple(row.countries or ())


@dataclass(frozen=True)
class Group:
    """Readers who chose the same editions and countries, so get the same copy; the JSON text
    as stored is what `planned_rows` matches them by."""

    editions_json: str
    countries_json: str
    countries: tuple[str, ...]  # what they chose (empty: every country)


def _as_text(column: sa.Column) -> sa.ColumnElement[str]:
    """The JSON column's stored text. PostgreSQL's json type has no equality, its text does; in
    SQLite the JSON column has numeric affinity, and comparing it to the plan's text columns
    without the cast keeps SQLite from looking the plan up by its key (it scanned every plan
    for every reader: 25 s instead of 5 for a million readers in 850 groups)."""
    return sa.cast(column, sa.Text)


def groups(conn: sa.Connection, edition: EditionConfig) -> list[Group]:
    """The edition's readers grouped by the editions and countries they chose: one DISTINCT
    scan of the subscribers in SQL, the JSON lists decided here so SQLite and PostgreSQL agree.

    Suppressed addresses are not left out here (checking them would double the scan's time):
    a group of only suppressed readers is planned for and then matches nobody in `planned_rows`.
    """
    editions_text, countries_text = _as_text(S.c.editions), _as_text(S.c.countries)
    rows = conn.execute(
        sa.select(editions_text, countries_text).distinct()
        .where(S.c.status == "active", S.c.language == edition.language)
    )
    return [Group(editions_json, countries_json, tuple(json.loads(countries_json) or ()))
            for editions_json, countries_json in rows if _wants(json.loads(editions_json), edition)]


def count(conn: sa.Connection, edition: EditionConfig, countries: Collection[str]) -> int:
    """How many readers `audience` would give, counted by the store group by group."""
    editions_text, countries_text = _as_text(S.c.editions), _as_text(S.c.countries)
    rows = conn.execute(
        sa.select(editions_text, countries_text, sa.func.count())
        .where(_eligible(edition)).group_by(editions_text, countries_text)
    )
    wanted = set(countries)
    return sum(size for editions_json, countries_json, size in rows
               if _wants(json.loads(editions_json), edition)
               and (not (chosen := json.loads(countries_json)) or not wanted.isdisjoint(chosen)))


@dataclass(frozen=True)
class Plan:
    """What every reader of a group gets: a delivery in `state`, carrying copy `content_key`
    (None: the whole mailing), with `reason` when they get nothing (skipped)."""

    group: Group
    state: str
    content_key: str | None = None
    reason: str | None = None


_plan = sa.Table(
    "audience_plan", sa.MetaData(),
    sa.Column("editions_json", sa.Text, primary_key=True),
    sa.Column("countries_json", sa.Text, primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("content_key", sa.String(32)),
    sa.Column("reason", sa.Text),
    prefixes=["TEMPORARY"],
)


@contextmanager
def planned_rows(conn: sa.Connection, edition: EditionConfig, plans: Sequence[Plan]) -> Iterator[sa.Select]:
    """A SELECT of (subscriber_id, email, state, content_key, last_error), one row per reader of
    the planned groups in subscriber order, for `ledger.record_planned` to insert as it is read.

    The plans live in a temporary table for the block (a join, however many groups there are);
    when the block fails, the transaction's rollback takes the table away with everything else.
    """
    _plan.create(conn)
    if plans:
        conn.execute(_plan.insert(), [
            {"editions_json": p.group.editions_json, "countries_json": p.group.countries_json, "state": p.state,
             "content_key": p.content_key, "reason": p.reason} for p in plans
        ])
    yield (
        sa.select(S.c.id.label("subscriber_id"), S.c.email, _plan.c.state, _plan.c.content_key,
                  _plan.c.reason.label("last_error"))
        .join(_plan, sa.and_(_plan.c.editions_json == _as_text(S.c.editions),
                             _plan.c.countries_json == _as_text(S.c.countries)))
        .where(_eligible(edition)).order_by(S.c.id)
    )
    _plan.drop(conn)
