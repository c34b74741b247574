"""Migration 0007 (bounce reports) on a store that already holds mailings and deliveries."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from newsletter.store import db, schema, utcnow
from tests.support.sending import T0


def test_upgrading_a_store_with_deliveries_adds_bounce_reports_and_keeps_the_rows(store_url: str) -> None:
    engine = db.create_engine(store_url)
    config = db._alembic_config(engine)
    before = ScriptDirectory.from_config(config).get_revision("0007").down_revision
    try:
        command.upgrade(config, str(before))
        with engine.begin() as conn:
            mailing = conn.execute(schema.mailings.insert().values(
                edition="daily-en", slot="a", language="en", status="sending", subject="Ports", preheader="",
                brief_ids=[1], cutoff=T0, created_at=T0)).inserted_primary_key[0]
            delivery = conn.execute(schema.deliveries.insert().values(
                mailing_id=mailing, email="r@example.org", state="sent", attempts=1)).inserted_primary_key[0]
        db.upgrade(engine)
        r = schema.bounce_reports
        row = dict(identity="message-id:<x@relay>", email="r@example.org", received_at=utcnow(), source="imap",
                   kind="hard", mailing_id=mailing, delivery_id=delivery, status="5.1.1")
        with engine.begin() as conn:
            conn.execute(r.insert().values(**row))
            assert conn.execute(sa.select(schema.deliveries.c.email)).scalar_one() == "r@example.org"
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(r.insert().values(**row))
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(r)).scalar_one() == 1
    finally:
        engine.dispose()
