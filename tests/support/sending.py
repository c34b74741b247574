"""Mailings with subscribers and deliveries, written straight to the store, for the send tests."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import sqlalchemy as sa

from newsletter import config as config_module
from newsletter.config import Config
from newsletter.send.ledger import create_deliveries
from newsletter.store import schema
from newsletter.subscribers import audience
from tests.support.configs import base_config, write_config

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
HTML = ("<html><body><p>%%nl:greeting_html%%</p><p>Three briefs on port corruption today.</p>"
        "<p><a href=\"%%nl:unsubscribe_url_html%%\">Unsubscribe</a> · "
        "<a href=\"%%nl:preferences_url_html%%\">Preferences</a></p></body></html>")
TEXT = "%%nl:greeting%%\n\nThree briefs on port corruption today.\n\nUnsubscribe: %%nl:unsubscribe_url%%\n"


def send_config(folder: Path, store_url: str, *, dkim: dict[str, str] | None = None,
                **transport: Any) -> tuple[Config, Path]:
    """A config with one English edition and the given [transport] keys (and [dkim] table), on disk for the CLI too."""
    data = base_config(store_url)
    data["editions"] = [{"name": "daily-en", "language": "en", "title": "Crime Briefs Daily"}]
    data["transport"] = {"retry_base_seconds": 0.2, **transport}
    if dkim:
        data["dkim"] = dkim
    path = write_config(folder, data)
    return config_module.load(path), path


def add_subscribers(engine: sa.Engine, emails: Sequence[str]) -> None:
    rows = [
        {"email": e, "name": f"Reader {i}", "language": "en", "editions": [], "countries": [], "status": "active",
         "soft_bounces": 0, "created_at": T0, "updated_at": T0, "confirmed_at": T0}
        for i, e in enumerate(emails)
    ]
    with engine.begin() as conn:
        conn.execute(schema.subscribers.insert(), rows)


def make_mailing(config: Config, engine: sa.Engine, emails: Sequence[str], *, slot: str = "2026-03-02T12:00:00+00:00",
                 html: str = HTML, text: str = TEXT) -> int:
    """Subscribers for `emails`, a rendered mailing of daily-en, and its deliveries."""
    add_subscribers(engine, emails)
    edition = config.edition("daily-en")
    with engine.begin() as conn:
        mailing_id = conn.execute(schema.mailings.insert().values(
            edition=edition.name, slot=slot, language="en", status="sending", subject="Port corruption, today",
            preheader="", brief_ids=[1], cutoff=T0, html=html, text=text, content_hash="c0ffee", created_at=T0,
        )).inserted_primary_key[0]
        create_deliveries(conn, mailing_id, audience(conn, edition, []))
    return mailing_id


def states(engine: sa.Engine, mailing_id: int) -> dict[str, str]:
    d = schema.deliveries
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(d.c.email, d.c.state).where(d.c.mailing_id == mailing_id)).all())


def mailing(engine: sa.Engine, mailing_id: int) -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(sa.select(schema.mailings).where(schema.mailings.c.id == mailing_id)).one()


def delivery(engine: sa.Engine, mailing_id: int, email: str) -> sa.Row:
    d = schema.deliveries
    with engine.connect() as conn:
        return conn.execute(sa.select(d).where(d.c.mailing_id == mailing_id, d.c.email == email)).one()
