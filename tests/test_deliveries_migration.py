"""Migration 0008 (deliveries without foreign keys) on a store that already holds a mailing:
its deliveries, and the bounce report pointing at one, come through; erasing a subscriber
still clears their id from the ledger (the key's ON DELETE SET NULL did it before)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from newsletter.store import db, schema
from newsletter.subscribers import registry
from newsletter.subscribers.address import erased_key
from newsletter.subscribers.profile import Profile
from tests.support.sending import T0


def test_upgrading_keeps_the_ledger_and_erasure_still_clears_the_subscriber(store_url: str) -> None:
    engine = db.create_engine(store_url)
    config = db._alembic_config(engine)
    before = ScriptDirectory.from_config(config).get_revision("0008").down_revision
    d = schema.deliveries
    try:
        command.upgrade(config, str(before))
        with engine.begin() as conn:
            ids = [registry.add(conn, f"r{i}@example.org", Profile(f"R{i}", "en", (), ()), registry.Consent(),
                                source="test")[0] for i in range(3)]
            mailing = conn.execute(schema.mailings.insert().values(
                edition="daily-en", slot="a", language="en", status="sending", subject="Ports", preheader="",
                brief_ids=[1], cutoff=T0, created_at=T0)).inserted_primary_key[0]
            conn.execute(d.insert(), [{"mailing_id": mailing, "subscriber_id": sid, "email": f"r{i}@example.org",
                                       "state": "sent" if i else "pending", "attempts": i} for i, sid in enumerate(ids)])
            sent = conn.scalar(sa.select(d.c.id).where(d.c.email == "r1@example.org"))
            conn.execute(schema.bounce_reports.insert().values(
                identity="message-id:<x@relay>", email="r1@example.org", received_at=T0, source="imap", kind="hard",
                mailing_id=mailing, delivery_id=sent, status="5.1.1"))
        db.upgrade(engine)
        with engine.connect() as conn:
            assert [fk["name"] for fk in sa.inspect(conn).get_foreign_keys("deliveries")] == []
            rows = conn.execute(sa.select(d.c.mailing_id, d.c.subscriber_id, d.c.email, d.c.state, d.c.attempts)
                                .order_by(d.c.id)).all()
            assert rows == [(mailing, ids[0], "r0@example.org", "pending", 0),
                            (mailing, ids[1], "r1@example.org", "sent", 1),
                            (mailing, ids[2], "r2@example.org", "sent", 2)]
            assert conn.scalar(sa.select(schema.bounce_reports.c.delivery_id)) == sent
        with engine.begin() as conn:
            registry.erase(conn, ids[1])
        with engine.connect() as conn:
            erased = conn.execute(sa.select(d.c.subscriber_id, d.c.email, d.c.state).where(d.c.id == sent)).one()
            assert erased == (None, erased_key("r1@example.org"), "sent")
            others = conn.execute(sa.select(d.c.subscriber_id).where(d.c.id != sent).order_by(d.c.id)).scalars().all()
            assert others == [ids[0], ids[2]]
    finally:
        engine.dispose()
