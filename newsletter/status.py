"""A snapshot of the job for operators: sources, editions, mailings and their counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from apscheduler.triggers.cron import CronTrigger

from newsletter.config import Config, EditionConfig
from newsletter.store import schema, utcnow


def next_due(edition: EditionConfig, now: datetime) -> datetime | None:
    trigger = CronTrigger.from_crontab(edition.schedule, timezone=ZoneInfo(edition.timezone))
    return trigger.get_next_fire_time(None, now)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def gather(config: Config, engine: sa.Engine, *, mailing_limit: int = 20) -> dict[str, Any]:
    now = utcnow()
    with engine.connect() as conn:
        source_rows = {r.name: r for r in conn.execute(sa.select(schema.sources))}
        brief_counts = dict(
            conn.execute(sa.select(schema.briefs.c.source, sa.func.count()).group_by(schema.briefs.c.source)).all()
        )
        mailings = conn.execute(
            sa.select(schema.mailings).order_by(schema.mailings.c.id.desc()).limit(mailing_limit)
        ).all()
        counts: dict[int, dict[str, int]] = {}
        if mailings:
            d = schema.deliveries
            rows = conn.execute(
                sa.select(d.c.mailing_id, d.c.state, sa.func.count())
                .where(d.c.mailing_id.in_([m.id for m in mailings]))
                .group_by(d.c.mailing_id, d.c.state)
            )
            for mailing_id, state, n in rows:
                counts.setdefault(mailing_id, {})[state] = n
        last_by_edition = dict(
            conn.execute(
                sa.select(schema.mailings.c.edition, sa.func.max(schema.mailings.c.created_at)).group_by(
                    schema.mailings.c.edition
                )
            ).all()
        )

    sources = []
    for source in config.sources:
        row = source_rows.get(source.name)
        sources.append(
            {
                "name": source.name,
                "kind": source.kind,
                "url": source.url,
                "briefs": brief_counts.get(source.name, 0),
                "last_run_at": _iso(row.last_run_at) if row else None,
                "last_success_at": _iso(row.last_success_at) if row else None,
                "last_error": row.last_error if row else None,
                "last_counts": row.last_counts if row else None,
            }
        )
    editions = [
        {
            "name": e.name,
            "language": e.language,
            "schedule": e.schedule,
            "timezone": e.timezone,
            "last_mailing_at": _iso(last_by_edition.get(e.name)),
            "next_due_at": _iso(next_due(e, now)),
        }
        for e in config.editions
    ]
    states = ("pending", "sending", "sent", "failed", "suppressed")
    mailing_list = [
        {
            "id": m.id,
            "edition": m.edition,
            "slot": m.slot,
            "status": m.status,
            "paused_reason": m.paused_reason,
            "subject": m.subject,
            "briefs": len(m.brief_ids),
            "created_at": _iso(m.created_at),
            "finished_at": _iso(m.finished_at),
            "deliveries": {s: counts.get(m.id, {}).get(s, 0) for s in states},
        }
        for m in mailings
    ]
    return {"sources": sources, "editions": editions, "mailings": mailing_list}
