"""Briefs, subscribers and configs for the editions and scheduler tests, written straight to the store."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from newsletter import config as config_module
from newsletter.config import Config
from newsletter.store import schema
from tests.support.configs import base_config

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


def make_config(store_url: str, folder: Path, editions: list[dict[str, Any]] | None = None, **sections: Any) -> Config:
    data = base_config(store_url)
    data["editions"] = editions or [{"name": "daily-en", "language": "en", "schedule": "0 7 * * *",
                                      "timezone": "America/Bogota"}]
    data.update(sections)
    return config_module.parse(data, folder / "config.toml")


def add_brief(engine: sa.Engine, key: str, *, seen: datetime, language: str = "en",
              countries: tuple[str, ...] = ("colombia",), published: datetime | None = None) -> int:
    published = published or seen
    with engine.begin() as conn:
        return conn.execute(
            schema.briefs.insert().values(
                source=f"site-{language}", key=key, guid=f"tag:briefs.example.org,2026:{key}",
                url=f"https://briefs.example.org/news/{key}/", title=f"Brief {key}", authors=["Ana Ruiz"],
                published_at=published, modified_at=published, language=language, countries=list(countries),
                tags=[], lede=f"<p>What happened in {key}.</p>", analysis="<p>Why it matters.</p>",
                content_hash=key, first_seen_at=seen, updated_at=seen,
            )
        ).inserted_primary_key[0]


def add_subscriber(engine: sa.Engine, email: str, *, language: str = "en", countries: tuple[str, ...] = ()) -> None:
    with engine.begin() as conn:
        conn.execute(
            schema.subscribers.insert().values(
                email=email, name="", language=language, editions=[], countries=list(countries), status="active",
                soft_bounces=0, created_at=T0, updated_at=T0, confirmed_at=T0,
            )
        )


def mailings(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.select(schema.mailings).order_by(schema.mailings.c.id)).all()


def deliveries(engine: sa.Engine, mailing_id: int) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(schema.deliveries).where(schema.deliveries.c.mailing_id == mailing_id)
            .order_by(schema.deliveries.c.email)
        ).all()
