"""Revision 0003 on a store that lived at 0001: subscribers and consents survive, unconfirmed
web requests of the old form (whose links no longer open anything) are dropped, new tables work."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from newsletter.store import schema, upgrade, utcnow
from newsletter.store.db import _alembic_config, create_engine


def test_upgrade_from_0001_keeps_the_list(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        command.upgrade(_alembic_config(engine), "0001")
        now = utcnow()
        with engine.begin() as conn:
            conn.execute(sa.insert(schema.subscribers), [
                {"id": 1, "email": "ana@example.org", "name": "Ana", "language": "en", "editions": [],
                 "countries": ["peru"], "status": "active", "soft_bounces": 0, "created_at": now,
                 "updated_at": now, "confirmed_at": now},
                {"id": 2, "email": "waiting@example.org", "name": "", "language": "en", "editions": [],
                 "countries": [], "status": "pending", "soft_bounces": 0, "created_at": now, "updated_at": now,
                 "confirmed_at": None}])
            conn.execute(sa.insert(schema.consents), [
                {"subscriber_id": 1, "action": "subscribe", "at": now, "ip": "192.0.2.1", "confirmed_at": now,
                 "detail": None},
                {"subscriber_id": 1, "action": "confirm", "at": now, "ip": None, "confirmed_at": now, "detail": None},
                {"subscriber_id": 2, "action": "subscribe", "at": now, "ip": "192.0.2.66", "confirmed_at": None,
                 "detail": {"profile": {"name": "Attacker"}}}])
        before, after = upgrade(engine)
        assert before == "0001" and after >= "0003"
        with engine.begin() as conn:
            subscribers = conn.execute(sa.select(schema.subscribers.c.email, schema.subscribers.c.countries)
                                       .order_by(schema.subscribers.c.id)).all()
            consents = conn.execute(sa.select(schema.consents.c.subscriber_id, schema.consents.c.action,
                                              schema.consents.c.ip).order_by(schema.consents.c.id)).all()
            conn.execute(sa.insert(schema.webhook_events).values(provider="mailgun", event_key="t", received_at=now))
            conn.execute(sa.insert(schema.rate_hits).values(bucket="b", subject="s", at=now))
            conn.execute(sa.insert(schema.data_links).values(subscriber_id=1, created_at=now, expires_at=now))
        assert [tuple(r) for r in subscribers] == [("ana@example.org", ["peru"]), ("waiting@example.org", [])]
        assert [tuple(r) for r in consents] == [(1, "subscribe", "192.0.2.1"), (1, "confirm", None)]
    finally:
        engine.dispose()
