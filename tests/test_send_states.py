"""Delivery and mailing states: named in one place, and the store refuses any other value."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from newsletter import mailings
from newsletter.states import DeliveryState, MailingStatus
from newsletter.store import db, schema
from tests.support.sending import T0


def _mailing(conn: sa.Connection, slot: str, status: str = "sending") -> int:
    return conn.execute(schema.mailings.insert().values(
        edition="daily-en", slot=slot, language="en", status=status, subject="Ports", preheader="",
        brief_ids=[1], cutoff=T0, created_at=T0)).inserted_primary_key[0]


def test_upgrading_a_store_with_mailings_keeps_every_delivery_and_adds_the_checks(store_url: str) -> None:
    engine = db.create_engine(store_url)
    try:
        command.upgrade(db._alembic_config(engine), "0001")
        with engine.begin() as conn:
            sending = _mailing(conn, "a")
            done = _mailing(conn, "b", "done")
            conn.execute(schema.deliveries.insert(), [
                {"mailing_id": sending, "email": f"r{i}@example.org", "state": state, "attempts": 1}
                for i, state in enumerate(("pending", "sending", "sent", "failed", "suppressed"))
            ] + [{"mailing_id": done, "email": "x@example.org", "state": "sent", "attempts": 1}])
        db.upgrade(engine)
        d = schema.deliveries
        with engine.connect() as conn:
            rows = conn.execute(sa.select(d.c.mailing_id, d.c.email, d.c.state).order_by(d.c.id)).all()
            statuses = conn.execute(sa.select(schema.mailings.c.status).order_by(schema.mailings.c.id)).scalars().all()
        assert [tuple(r) for r in rows] == [
            (sending, "r0@example.org", "pending"), (sending, "r1@example.org", "sending"),
            (sending, "r2@example.org", "sent"), (sending, "r3@example.org", "failed"),
            (sending, "r4@example.org", "suppressed"), (done, "x@example.org", "sent")]
        assert statuses == ["sending", "done"]
        with pytest.raises(sa.exc.IntegrityError, match="ck_deliveries_state"):
            with engine.begin() as conn:
                conn.execute(sa.update(d).where(d.c.email == "r0@example.org").values(state="delivered"))
        with pytest.raises(sa.exc.IntegrityError, match="ck_mailings_status"):
            with engine.begin() as conn:
                _mailing(conn, "c", "finished")
        with engine.begin() as conn:
            conn.execute(sa.update(d).where(d.c.email == "r0@example.org").values(state=DeliveryState.SKIPPED))
        if engine.dialect.name == "sqlite":
            # Rebuilding the tables must leave SQLite enforcing foreign keys again.
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_the_downgrade_drops_the_checks_and_keeps_the_rows(sqlite_url: str) -> None:
    engine = db.create_engine(sqlite_url)
    try:
        db.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(schema.deliveries.insert().values(mailing_id=_mailing(conn, "a"), email="r@example.org",
                                                           state="sent", attempts=1))
        command.downgrade(db._alembic_config(engine), "0001")
        with engine.begin() as conn:
            conn.execute(sa.update(schema.deliveries).values(state="delivered"))
            assert conn.execute(sa.select(schema.deliveries.c.state)).scalar_one() == "delivered"
    finally:
        engine.dispose()


def test_operators_see_a_count_for_every_delivery_state(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        mailing_id = _mailing(conn, "a")
        conn.execute(schema.deliveries.insert(), [
            {"mailing_id": mailing_id, "email": "a@example.org", "state": DeliveryState.SENT, "attempts": 1},
            {"mailing_id": mailing_id, "email": "b@example.org", "state": DeliveryState.SKIPPED, "attempts": 0},
        ])
        shown = mailings.get(conn, mailing_id)
    assert shown["status"] == MailingStatus.SENDING
    assert shown["deliveries"] == {"pending": 0, "sending": 0, "sent": 1, "failed": 0, "suppressed": 0, "skipped": 1}
