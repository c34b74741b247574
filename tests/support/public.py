"""A publication with an English and a Spanish edition, briefs in both languages and past mailings
rendered by the real digest code, for the public pages' tests (home, archive, feeds list)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from newsletter import briefs
from newsletter.config import Config, load
from newsletter.digest import render_mailing
from newsletter.store import schema
from tests.support.configs import base_config, write_config

SITE = "https://briefs.example.org"
START = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
PLACES = ("colombia", "mexico", "venezuela", "honduras")


def public_config(directory: Path, store_url: str, public_url: str, **sections: Any) -> Path:
    data = base_config(store_url)
    data["publication"]["public_url"] = public_url
    data["sources"] = [
        {"name": "site-en", "kind": "wordpress", "url": SITE, "language": "en"},
        {"name": "site-es", "kind": "wordpress", "url": "https://es.briefs.example.org", "language": "es"},
    ]
    data["editions"] = [
        {"name": "daily-en", "language": "en", "title": "Daily Briefing", "schedule": "0 7 * * mon-fri",
         "timezone": "America/Bogota"},
        {"name": "semanal-es", "language": "es", "title": "Resumen semanal", "schedule": "0 8 * * mon",
         "timezone": "America/Mexico_City"},
    ]
    data.update(sections)
    return write_config(directory, data)


def brief(n: int, language: str = "en", **changes: Any) -> briefs.Brief:
    at = START + timedelta(hours=n)
    place = PLACES[n % len(PLACES)]
    values: dict[str, Any] = dict(
        source=f"site-{language}", key=f"{language}-{n}",
        url=f"{SITE}/news/brief-{n}/" if language == "en" else f"https://es.briefs.example.org/noticias/{n}/",
        title=(f"Brief {n}: police follow the money in {place.title()}" if language == "en"
               else f"Nota {n}: la policía sigue el dinero en {place.title()}"),
        published_at=at, modified_at=at, language=language, authors=("Ana Ruiz",), countries=(place,),
        tags=("Cocaine",), lede=f"<p>What happened in case {n}.</p>", analysis="<p>Why it matters.</p>",
    )
    values.update(changes)
    return briefs.Brief(**values)


def store_briefs(engine: sa.Engine, *items: briefs.Brief) -> list[int]:
    with engine.begin() as conn:
        return [briefs.upsert(conn, item, site_url=SITE)[1] for item in items]


def add_mailing(engine: sa.Engine, config: Config, edition_name: str, brief_ids: list[int], sent_at: datetime,
                *, status: str = "done") -> int:
    """A mailing that went out at `sent_at`, rendered as `send` renders one."""
    edition = next(e for e in config.editions if e.name == edition_name)
    m = schema.mailings
    with engine.begin() as conn:
        mailing_id = conn.execute(m.insert().values(
            edition=edition.name, slot=sent_at.isoformat(), language=edition.language, status=status, subject="",
            preheader="", brief_ids=brief_ids, cutoff=sent_at, created_at=sent_at, started_at=sent_at,
            finished_at=sent_at,
        )).inserted_primary_key[0]
        rendered = render_mailing(config, edition, briefs.by_ids(conn, brief_ids), mailing_id=mailing_id,
                                  created_at=sent_at)
        conn.execute(m.update().where(m.c.id == mailing_id).values(
            subject=rendered.subject, preheader=rendered.preheader, html=rendered.html, text=rendered.text,
            content_hash=rendered.content_hash))
    return mailing_id


def seed(engine: sa.Engine, config_path: Path, *, english_mailings: int = 3) -> dict[str, list[int]]:
    """Briefs in both languages and past mailings: `english_mailings` of daily-en (two briefs each, one a
    day), one of semanal-es. Returns the mailing ids per edition, oldest first."""
    config = load(config_path)
    ids: dict[str, list[int]] = {"daily-en": [], "semanal-es": []}
    for day in range(english_mailings):
        brief_ids = store_briefs(engine, brief(2 * day + 1), brief(2 * day + 2))
        ids["daily-en"].append(add_mailing(engine, config, "daily-en", brief_ids, START + timedelta(days=day, hours=12)))
    spanish = store_briefs(engine, brief(1, "es"), brief(2, "es", countries=("colombia", "mexico")))
    ids["semanal-es"].append(add_mailing(engine, config, "semanal-es", spanish, START + timedelta(days=1, hours=13)))
    return ids
