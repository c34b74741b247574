"""Engagement figures per mailing and per edition, from the counters and the delivery ledger.

Clicks are requests judged to be people (see `newsletter.tracking.filter`), not people: a
reader who clicks twice counts twice, and nothing can tell two readers apart. A rate is clicks
per copy delivered; a brief's rate is over the copies that carried it (per-reader copies carry
different briefs).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsletter.errors import MailingError
from newsletter.states import DeliveryState
from newsletter.store import schema
from newsletter.tracking import counts
from newsletter.tracking.links import KINDS
from newsletter.tracking.tokens import OPEN

# How many of an edition's earlier mailings a mailing is compared with.
COMPARE_WITH = 10

m = schema.mailings
d = schema.deliveries
ml = schema.mailing_links
tc = schema.tracking_counts
mc = schema.mailing_contents


def _rate(clicks: int, delivered: int) -> float:
    return round(clicks / delivered, 4) if delivered else 0.0


def _delivered_by_copy(conn: sa.Connection, mailing_id: int) -> dict[str | None, int]:
    rows = conn.execute(
        sa.select(d.c.content_key, sa.func.count())
        .where(d.c.mailing_id == mailing_id, d.c.state == DeliveryState.SENT).group_by(d.c.content_key)
    )
    return {key: n for key, n in rows}


def _skipped(conn: sa.Connection, mailing_id: int) -> int:
    return conn.scalar(sa.select(sa.func.count()).select_from(d).where(
        d.c.mailing_id == mailing_id, d.c.state == DeliveryState.SKIPPED)) or 0


def _totals(conn: sa.Connection, mailing_id: int) -> dict[str, Any]:
    """The figures that compare across mailings: delivered, clicks, donate clicks, opens, filtered."""
    delivered = sum(_delivered_by_copy(conn, mailing_id).values())
    by_kind: Counter[str] = Counter()
    filtered: Counter[str] = Counter()
    opens = 0
    rows = conn.execute(
        sa.select(tc.c.link_no, tc.c.verdict, ml.c.kind, sa.func.sum(tc.c.count))
        .select_from(tc.outerjoin(ml, sa.and_(ml.c.mailing_id == tc.c.mailing_id, ml.c.link_no == tc.c.link_no)))
        .where(tc.c.mailing_id == mailing_id).group_by(tc.c.link_no, tc.c.verdict, ml.c.kind)
    )
    for link_no, verdict, kind, n in rows:
        n = int(n or 0)
        if verdict != counts.COUNTED:
            filtered[verdict] += n
        elif link_no == OPEN:
            opens += n
        else:
            by_kind[kind or "other"] += n
    clicks = sum(by_kind.values())
    return {
        "delivered": delivered,
        "clicks": clicks,
        "click_rate": _rate(clicks, delivered),
        "donate_clicks": by_kind["donate"],
        "donate_rate": _rate(by_kind["donate"], delivered),
        "clicks_by_kind": {k: by_kind[k] for k in KINDS},
        "opens": opens,
        "filtered": {v: filtered[v] for v in counts.FILTERED},
    }


def _briefs(conn: sa.Connection, mailing_id: int, brief_ids: list[int]) -> list[dict[str, Any]]:
    delivered = _delivered_by_copy(conn, mailing_id)
    carried: Counter[int] = Counter()
    copies = dict(conn.execute(sa.select(mc.c.key, mc.c.brief_ids).where(mc.c.mailing_id == mailing_id)).all())
    for key, n in delivered.items():
        for brief_id in (brief_ids if key is None else copies.get(key, [])):
            carried[brief_id] += n
    clicks: dict[int, Counter[str]] = {}
    rows = conn.execute(
        sa.select(ml.c.brief_id, ml.c.kind, sa.func.sum(tc.c.count))
        .select_from(tc.join(ml, sa.and_(ml.c.mailing_id == tc.c.mailing_id, ml.c.link_no == tc.c.link_no)))
        .where(tc.c.mailing_id == mailing_id, tc.c.verdict == counts.COUNTED, ml.c.brief_id.is_not(None))
        .group_by(ml.c.brief_id, ml.c.kind)
    )
    for brief_id, kind, n in rows:
        clicks.setdefault(brief_id, Counter())[kind] += int(n or 0)
    b = schema.briefs
    info = {r.id: r for r in conn.execute(sa.select(b.c.id, b.c.title, b.c.url, b.c.countries).where(b.c.id.in_(brief_ids)))}
    out = []
    for brief_id in brief_ids:
        row = info.get(brief_id)
        n = sum(clicks.get(brief_id, Counter()).values())
        out.append({
            "id": brief_id,
            "title": row.title if row else "(brief no longer stored)",
            "url": row.url if row else "",
            "countries": list(row.countries or ()) if row else [],
            "delivered": carried[brief_id],
            "clicks": n,
            "original_clicks": clicks.get(brief_id, Counter())["original"],
            "click_rate": _rate(n, carried[brief_id]),
        })
    return out


def _per_day(conn: sa.Connection, mailing_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.select(tc.c.day, sa.func.sum(tc.c.count))
        .where(tc.c.mailing_id == mailing_id, tc.c.verdict == counts.COUNTED, tc.c.link_no != OPEN)
        .group_by(tc.c.day).order_by(tc.c.day)
    )
    return [{"day": day.isoformat(), "clicks": int(n or 0)} for day, n in rows]


def _mailing_row(conn: sa.Connection, mailing_id: int) -> sa.Row:
    row = conn.execute(sa.select(m).where(m.c.id == mailing_id)).first()
    if row is None:
        raise MailingError(f"no mailing with id {mailing_id}; `newsletter mailings list` shows them", not_found=True)
    return row


def _average(rows: list[dict[str, Any]], field: str) -> float:
    return round(sum(r[field] for r in rows) / len(rows), 4) if rows else 0.0


def mailing_report(conn: sa.Connection, mailing_id: int) -> dict[str, Any]:
    """One mailing's figures, with its briefs and the same figures for the edition's previous mailings."""
    row = _mailing_row(conn, mailing_id)
    totals = _totals(conn, mailing_id)
    earlier = conn.execute(
        sa.select(m.c.id, m.c.created_at).where(m.c.edition == row.edition, m.c.id < mailing_id)
        .order_by(m.c.id.desc()).limit(COMPARE_WITH)
    ).all()
    previous = [{"mailing_id": e.id, "created_at": e.created_at.isoformat(), **_totals(conn, e.id)} for e in earlier]
    fields = ("delivered", "clicks", "click_rate", "donate_clicks", "donate_rate")
    average = {f: _average(previous, f) for f in fields}
    return {
        "mailing_id": row.id,
        "edition": row.edition,
        "created_at": row.created_at.isoformat(),
        "subject": row.subject,
        **totals,
        "skipped": _skipped(conn, mailing_id),
        "briefs": _briefs(conn, mailing_id, list(row.brief_ids)),
        "per_day": _per_day(conn, mailing_id),
        "previous": {
            "mailings": len(previous),
            "average": average,
            "difference": {f: round(totals[f] - average[f], 4) for f in fields} if previous else {},
            "each": previous,
        },
    }


def with_previous(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """A mailing's figures after the edition's previous mailings, oldest first: the trend to draw."""
    return [*reversed(figures["previous"]["each"]),
            {"mailing_id": figures["mailing_id"], "created_at": figures["created_at"], **figures}]


def edition_trend(conn: sa.Connection, edition: str, since: datetime) -> dict[str, Any]:
    """The edition's mailings created since `since`, oldest first, with their figures."""
    rows = conn.execute(
        sa.select(m.c.id, m.c.created_at, m.c.subject).where(m.c.edition == edition, m.c.created_at >= since)
        .order_by(m.c.id)
    ).all()
    mailings = [{"mailing_id": r.id, "created_at": r.created_at.isoformat(), "subject": r.subject,
                 **_totals(conn, r.id)} for r in rows]
    latest = mailing_report(conn, rows[-1].id)["briefs"] if rows else []
    return {"edition": edition, "since": since.isoformat(), "mailings": mailings, "latest_briefs": latest}
