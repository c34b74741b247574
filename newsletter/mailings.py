"""Mailings as operators see them: listed with their ledger counts, found by edition, paused, resumed.

The store side of the operations layer (`newsletter.operations` decides who may do what and
records it). Pausing stops senders at their next claim (the ledger hands out nothing for a
mailing that is not sending); resuming lets the scheduler or `newsletter send EDITION --resume`
carry on from where the ledger stands.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import sqlalchemy as sa

from newsletter.errors import MailingError
from newsletter.send import ledger
from newsletter.states import OPEN, DeliveryState, MailingStatus
from newsletter.store import schema

log = logging.getLogger(__name__)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def describe(conn: sa.Connection, rows: Sequence[sa.Row], *,
             ids: sa.Select[tuple[int]] | None = None) -> list[dict[str, Any]]:
    """Mailing rows as operators see them: status, why paused, and delivery counts by state.

    The counts come from one grouped query over the `(mailing_id, state)` index; `ids`, the
    query that chose the rows, stands in for a list of their ids, however many there are.
    """
    counts: dict[int, dict[str, int]] = {}
    if rows:
        d = schema.deliveries
        query = (
            sa.select(d.c.mailing_id, d.c.state, sa.func.count())
            .where(d.c.mailing_id.in_([r.id for r in rows] if ids is None else ids))
            .group_by(d.c.mailing_id, d.c.state)
        )
        for mailing_id, state, n in conn.execute(query):
            counts.setdefault(mailing_id, {})[state] = n
    return [
        {
            "id": r.id,
            "edition": r.edition,
            "slot": r.slot,
            "status": r.status,
            "paused_reason": r.paused_reason,
            "subject": r.subject,
            "briefs": len(r.brief_ids),
            "cutoff": _iso(r.cutoff),
            "created_at": _iso(r.created_at),
            "started_at": _iso(r.started_at),
            "finished_at": _iso(r.finished_at),
            "deliveries": {s: counts.get(r.id, {}).get(s, 0) for s in DeliveryState},
        }
        for r in rows
    ]


def recent(conn: sa.Connection, limit: int | None = 20) -> list[dict[str, Any]]:
    """The newest `limit` mailings (every one when None), newest first, with their counts."""
    m = schema.mailings
    rows = conn.execute(sa.select(m).order_by(m.c.id.desc()).limit(limit)).all()
    return describe(conn, rows, ids=sa.select(m.c.id).order_by(m.c.id.desc()).limit(limit))


def get(conn: sa.Connection, mailing_id: int) -> dict[str, Any]:
    row = conn.execute(sa.select(schema.mailings).where(schema.mailings.c.id == mailing_id)).first()
    if row is None:
        raise MailingError(f"no mailing with id {mailing_id}", not_found=True)
    return describe(conn, [row])[0]


def row(conn: sa.Connection, mailing_id: int) -> sa.Row:
    found = conn.execute(sa.select(schema.mailings).where(schema.mailings.c.id == mailing_id)).first()
    if found is None:
        raise MailingError(f"no mailing with id {mailing_id}", not_found=True)
    return found


def unfinished(conn: sa.Connection, edition: str) -> sa.Row | None:
    """The edition's newest mailing still sending or paused, if any."""
    m = schema.mailings
    return conn.execute(
        sa.select(m).where(m.c.edition == edition, m.c.status.in_(OPEN)).order_by(m.c.id.desc()).limit(1)
    ).first()


def newest(conn: sa.Connection, edition: str) -> sa.Row | None:
    m = schema.mailings
    return conn.execute(sa.select(m).where(m.c.edition == edition).order_by(m.c.id.desc()).limit(1)).first()


def sending(conn: sa.Connection, edition: str | None = None) -> list[sa.Row]:
    """(id, edition) of every mailing still sending (of one edition when given), oldest first."""
    m = schema.mailings
    query = sa.select(m.c.id, m.c.edition).where(m.c.status == MailingStatus.SENDING).order_by(m.c.id)
    if edition is not None:
        query = query.where(m.c.edition == edition)
    return conn.execute(query).all()


def in_progress(conn: sa.Connection) -> list[dict[str, Any]]:
    """Mailings sending or paused, described, oldest first."""
    m = schema.mailings
    rows = conn.execute(sa.select(m).where(m.c.status.in_(OPEN)).order_by(m.c.id)).all()
    return describe(conn, rows)


def failures(conn: sa.Connection, mailing_id: int, limit: int = 20) -> list[tuple[str, int]]:
    """The mailing's failed deliveries grouped by their last error, most frequent first."""
    d = schema.deliveries
    n = sa.func.count().label("n")
    return [(r.last_error or "", r.n) for r in conn.execute(
        sa.select(d.c.last_error, n).where(d.c.mailing_id == mailing_id, d.c.state == DeliveryState.FAILED)
        .group_by(d.c.last_error).order_by(n.desc()).limit(limit))]


def pause(conn: sa.Connection, mailing_id: int, reason: str) -> dict[str, Any]:
    """Stop a sending mailing; senders stop at their next batch. Returns the mailing."""
    current = get(conn, mailing_id)
    if not ledger.pause(conn, mailing_id, reason):
        raise MailingError(f"mailing {mailing_id} is {current['status']}: only a sending mailing can be paused")
    log.info("mailing paused", extra={"mailing_id": mailing_id, "reason": reason})
    return get(conn, mailing_id)


def resume(conn: sa.Connection, mailing_id: int) -> dict[str, Any]:
    """Let a paused mailing send again; the scheduler or a send carries on from the ledger."""
    current = get(conn, mailing_id)
    if not ledger.resume(conn, mailing_id):
        raise MailingError(f"mailing {mailing_id} is {current['status']}: only a paused mailing can be resumed")
    log.info("mailing resumed", extra={"mailing_id": mailing_id})
    return get(conn, mailing_id)
