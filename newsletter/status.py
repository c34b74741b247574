"""A snapshot of the job for operators: sources, editions, mailings and their counts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from newsletter import editions, mailings
from newsletter.config import Config, EditionConfig
from newsletter.slots import Schedule
from newsletter.store import schema, utcnow


def next_due(edition: EditionConfig, now: datetime) -> datetime | None:
    return Schedule.of(edition).next_after(now)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def gather(config: Config, engine: sa.Engine, *, mailing_limit: int | None = None) -> dict[str, Any]:
    """The snapshot; `mailings` holds every mailing, newest first, or the newest `mailing_limit`."""
    now = utcnow()
    with engine.connect() as conn:
        source_rows = {r.name: r for r in conn.execute(sa.select(schema.sources))}
        # Per source, the briefs it saw (an article seen by two sources counts for both), and how
        # many of those their publisher withdrew.
        b, seen = schema.briefs, schema.sightings
        brief_counts = {
            source: (total, withdrawn or 0)
            for source, total, withdrawn in conn.execute(
                sa.select(seen.c.source, sa.func.count(sa.distinct(seen.c.brief_id)),
                          sa.func.sum(sa.case((b.c.withdrawn_at.is_not(None), 1), else_=0)))
                .join(b, b.c.id == seen.c.brief_id).group_by(seen.c.source)
            )
        }
        mailing_list = mailings.recent(conn, mailing_limit)
        m = schema.mailings
        s = schema.schedule_slots
        last_by_edition = {
            e.name: conn.execute(
                sa.select(m.c.id, m.c.created_at, m.c.status).where(m.c.edition == e.name)
                .order_by(m.c.id.desc()).limit(1)
            ).first()
            for e in config.editions
        }
        last_slots = {
            e.name: conn.execute(
                sa.select(s.c.slot, s.c.outcome).where(s.c.edition == e.name).order_by(s.c.due_at.desc()).limit(1)
            ).first()
            for e in config.editions
        }
        waiting = {e.name: editions.waiting(conn, e, now) for e in config.editions}

    sources = []
    for source in config.sources:
        row = source_rows.get(source.name)
        total, withdrawn = brief_counts.get(source.name, (0, 0))
        deferred = row.deferred_until if row is not None and row.deferred_until and row.deferred_until > now else None
        sources.append(
            {
                "name": source.name,
                "kind": source.kind,
                "url": source.url,
                "briefs": total,
                "withdrawn": withdrawn,
                # Set while the site asked us to wait: no collect before this time.
                "deferred_until": _iso(deferred),
                "last_run_at": _iso(row.last_run_at) if row else None,
                "last_success_at": _iso(row.last_success_at) if row else None,
                "last_error": row.last_error if row else None,
                "last_counts": row.last_counts if row else None,
            }
        )
    edition_list = []
    for e in config.editions:
        last = last_by_edition.get(e.name)
        slot = last_slots.get(e.name)
        edition_list.append({
            "name": e.name,
            "language": e.language,
            "schedule": e.schedule,
            "timezone": e.timezone,
            "last_mailing_id": last.id if last else None,
            "last_mailing_at": _iso(last.created_at) if last else None,
            "last_mailing_status": last.status if last else None,
            "last_slot": slot.slot if slot else None,
            "last_slot_outcome": slot.outcome if slot else None,
            "next_due_at": _iso(next_due(e, now)),
            "waiting_briefs": waiting[e.name],
        })
    with engine.connect() as conn:
        late = late_bounces(conn)
        recent_bounces = bounce_events(conn, now - BOUNCE_WINDOW)
    for m in mailing_list:
        m["late_bounces"] = late.get(m["id"], 0)
    return {"sources": sources, "editions": edition_list, "mailings": mailing_list, "bounces": recent_bounces}


BOUNCE_WINDOW = timedelta(days=30)
_BOUNCE_EVENTS = ("hard_bounce", "soft_bounce", "complaint")


def bounce_source(provider: str | None) -> str:
    """Where a bounce or complaint came from, in an operator's words."""
    if provider == "mailbox":
        return "bounce mailbox"
    if provider == "smtp":
        return "SMTP answer"
    return f"{provider} (webhook or API answer)" if provider else "-"


def late_bounces(conn: sa.Connection) -> dict[int, int]:
    """Per mailing, the bounces and complaints the bounce mailbox reported after the relay took the copy."""
    r = schema.bounce_reports
    return dict(conn.execute(
        sa.select(r.c.mailing_id, sa.func.count()).where(r.c.mailing_id.is_not(None),
                                                          r.c.kind.in_(("hard", "soft", "complaint")))
        .group_by(r.c.mailing_id)).all())


def bounce_events(conn: sa.Connection, since: datetime) -> dict[str, Any]:
    """Bounces and complaints since `since`: counts by kind and source, and the newest twenty."""
    e = schema.events
    recent = e.c.kind.in_(_BOUNCE_EVENTS) & (e.c.at >= since)
    counts: dict[str, dict[str, int]] = {}
    for kind, provider, count in conn.execute(
            sa.select(e.c.kind, e.c.provider, sa.func.count()).where(recent).group_by(e.c.kind, e.c.provider)):
        by_source = counts.setdefault(kind, {})
        source = bounce_source(provider)
        by_source[source] = by_source.get(source, 0) + count
    newest = [{"at": _iso(row.at), "kind": row.kind, "email": row.email, "source": bounce_source(row.provider)}
              for row in conn.execute(sa.select(e.c.at, e.c.kind, e.c.email, e.c.provider).where(recent)
                                      .order_by(e.c.at.desc(), e.c.id.desc()).limit(20))]
    return {"since": _iso(since), "counts": counts, "newest": newest}
