"""Operator controls over mailings: list them with their ledger counts, pause, resume.

Pausing stops senders at their next claim (the ledger hands out nothing for a mailing
that is not sending); resuming lets the scheduler or `newsletter send EDITION --resume`
carry on from where the ledger stands.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import sqlalchemy as sa

from newsletter.errors import MailingError
from newsletter.send import ledger
from newsletter.states import DeliveryState
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


def pause(engine: sa.Engine, mailing_id: int, reason: str = "paused by the operator") -> dict[str, Any]:
    """Stop a sending mailing; senders stop at their next batch. Returns the mailing."""
    with engine.begin() as conn:
        current = get(conn, mailing_id)
        if not ledger.pause(conn, mailing_id, reason):
            raise MailingError(f"mailing {mailing_id} is {current['status']}: only a sending mailing can be paused")
        log.info("mailing paused", extra={"mailing_id": mailing_id, "reason": reason})
        return get(conn, mailing_id)


def resume(engine: sa.Engine, mailing_id: int) -> dict[str, Any]:
    """Let a paused mailing send again; the scheduler or `send EDITION --resume` does the sending."""
    with engine.begin() as conn:
        current = get(conn, mailing_id)
        if not ledger.resume(conn, mailing_id):
            raise MailingError(f"mailing {mailing_id} is {current['status']}: only a paused mailing can be resumed")
        log.info("mailing resumed", extra={"mailing_id": mailing_id})
        return get(conn, mailing_id)
