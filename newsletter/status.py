"""A snapshot of the job for operators: sources, editions, mailings and their counts."""

from __future__ import annotations

from datetime import datetime
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
    return {"sources": sources, "editions": edition_list, "mailings": mailing_list}
