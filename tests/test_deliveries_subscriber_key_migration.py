"""Migration 0010 (deliveries keyed by mailing and subscriber, not by address) on a store that
already holds mailings: every delivery comes through, the bounce report pointing at one still
does, the new key refuses a second delivery of a mailing to one subscriber, and a claim's
index holds the delivery id."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from newsletter.store import db, schema
from newsletter.subscribers import registry
from newsletter.subscribers.address import erased_key
from newsletter.subscribers.profile import Profile
from tests.support.sending import T0


def test_upgrading_keeps_the_ledger_and_keys_it_by_subscriber(store_url: str) -> None:
    engine = db.create_engine(store_url)
    config = db._alembic_config(engine)
    d = schema.deliveries
    try:
        command.upgrade(config, "0008")
        with engine.begin() as conn:
            ids = [registry.add(conn, f"r{i}@example.org", Profile(f"R{i}", "en", (), ()), registry.Consent(),
                                source="test")[0] for i in range(3)]
            mailings = [conn.execute(schema.mailings.insert().values(
                edition="daily-en", slot=slot, language="en", status="sending", subject="Ports", preheader="",
                brief_ids=[1], cutoff=T0, created_at=T0)).inserted_primary_key[0] for slot in ("a", "b")]
            # Each mailing: the three subscribers, and two readers erased since (no subscriber id).
            conn.execute(d.insert(), [
                {"mailing_id": mailing, "subscriber_id": sid, "email": email, "state": "sent", "attempts": 1}
                for mailing in mailings
                for sid, email in [*zip(ids, (f"r{i}@example.org" for i in range(3))),
                                   (None, erased_key("gone1@example.org")), (None, erased_key("gone2@example.org"))]
            ])
            bounced = conn.scalar(sa.select(d.c.id).where(d.c.mailing_id == mailings[1], d.c.subscriber_id == ids[2]))
            conn.execute(schema.bounce_reports.insert().values(
                identity="message-id:<x@relay>", email="r2@example.org", received_at=T0, source="imap", kind="hard",
                mailing_id=mailings[1], delivery_id=bounced, status="5.1.1"))
            before = conn.execute(sa.select(d).order_by(d.c.id)).all()
        db.upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(sa.select(d).order_by(d.c.id)).all() == before
            assert conn.scalar(sa.select(schema.bounce_reports.c.delivery_id)) == bounced
            uniques = {u["name"]: u["column_names"] for u in sa.inspect(conn).get_unique_constraints("deliveries")}
            assert uniques == {"uq_deliveries_mailing_subscriber": ["mailing_id", "subscriber_id"]}
            indexes = {i["name"]: i["column_names"] for i in sa.inspect(conn).get_indexes("deliveries")
                       if not i.get("unique")}
            assert indexes == {"ix_deliveries_mailing_state_id": ["mailing_id", "state", "id"]}
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(d.insert().values(mailing_id=mailings[0], subscriber_id=ids[0], email="new@example.org",
                                           state="pending", attempts=0))
    finally:
        engine.dispose()
