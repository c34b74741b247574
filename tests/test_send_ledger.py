"""The delivery ledger on SQLite and PostgreSQL: created once, claimed once, retaken after a crash."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.recipients import Recipient
from newsletter.send import ledger
from newsletter.send.claims import Outcome, worker_name
from newsletter.store import schema, utcnow
from newsletter.subscribers import suppress
from tests.support.sending import add_subscribers, make_mailing, send_config, states

LEASE = timedelta(minutes=5)


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-0123456789abcdefghijkl")


def test_deliveries_are_created_once_and_suppressed_addresses_say_so(tmp_path: Path, engine: sa.Engine,
                                                                      store_url: str) -> None:
    config, _ = send_config(tmp_path, store_url)
    mailing_id = make_mailing(config, engine, ["a@example.net", "b@example.net"])
    add_subscribers(engine, ["c@example.net", "d@example.net"])
    s = schema.subscribers
    with engine.begin() as conn:
        suppress(conn, "c@example.net", "complaint")
        recipients = [Recipient(i, e) for i, e in conn.execute(sa.select(s.c.id, s.c.email).order_by(s.c.id))]
        added = ledger.create_deliveries(conn, mailing_id, recipients)
        again = ledger.create_deliveries(conn, mailing_id, recipients)
    assert (added, again) == (2, 0)
    assert states(engine, mailing_id) == {"a@example.net": "pending", "b@example.net": "pending",
                                          "c@example.net": "suppressed", "d@example.net": "pending"}
    # A delivery is keyed by its subscriber: an address that is not one has none.
    with pytest.raises(ValueError, match="one-off@example.net has no subscriber id"), engine.begin() as conn:
        ledger.create_deliveries(conn, mailing_id, [Recipient(None, "one-off@example.net")])


def test_a_claim_takes_each_delivery_once_and_a_stale_claim_is_retaken(tmp_path: Path, engine: sa.Engine,
                                                                        store_url: str) -> None:
    config, _ = send_config(tmp_path, store_url)
    mailing_id = make_mailing(config, engine, [f"r{i}@example.net" for i in range(7)])
    now = utcnow()
    with engine.begin() as conn:
        first = ledger.claim(conn, mailing_id, "host:1:a", 4, now, LEASE)
    with engine.begin() as conn:
        second = ledger.claim(conn, mailing_id, "host:2:b", 4, now, LEASE)
    with engine.begin() as conn:
        third = ledger.claim(conn, mailing_id, "host:3:c", 4, now, LEASE)
    assert [len(first), len(second), len(third)] == [4, 3, 0]
    assert {c.id for c in first}.isdisjoint({c.id for c in second})
    assert first[0].recipient.name == "Reader 0"
    with engine.begin() as conn:
        ledger.record(conn, "host:2:b", [Outcome(c.id, "sent", provider_message_id="x") for c in second], now)
    # The first worker died holding its claim: once the lease ran out, another takes it over.
    with engine.begin() as conn:
        retaken = ledger.claim(conn, mailing_id, "host:4:d", 10, now + LEASE + timedelta(seconds=1), LEASE)
    assert sorted(c.id for c in retaken) == sorted(c.id for c in first)


def test_a_retry_waits_for_its_time(tmp_path: Path, engine: sa.Engine, store_url: str) -> None:
    config, _ = send_config(tmp_path, store_url)
    mailing_id = make_mailing(config, engine, ["a@example.net", "b@example.net"])
    now = utcnow()
    worker = worker_name("x")
    with engine.begin() as conn:
        a, b = ledger.claim(conn, mailing_id, worker, 2, now, LEASE)
        ledger.record(conn, worker, [Outcome(a.id, "pending", "451 later", next_attempt_at=now + timedelta(seconds=60)),
                                     Outcome(b.id, "sent")], now)
    with engine.begin() as conn:
        assert ledger.claim(conn, mailing_id, "w", 5, now, LEASE) == []
        later = ledger.claim(conn, mailing_id, "w", 5, now + timedelta(seconds=61), LEASE)
        assert [(c.recipient.email, c.attempts) for c in later] == [("a@example.net", 1)]


def test_a_beating_worker_keeps_its_claims_and_a_silent_one_loses_them_within_one_lease(
        tmp_path: Path, engine: sa.Engine, store_url: str) -> None:
    config, _ = send_config(tmp_path, store_url)
    mailing_id = make_mailing(config, engine, [f"r{i}@example.net" for i in range(4)])
    lease = timedelta(seconds=1.2)
    alive, dead = worker_name("alive"), worker_name("dead")
    with engine.begin() as conn:
        kept = ledger.claim(conn, mailing_id, alive, 2, utcnow(), lease)
        lost = ledger.claim(conn, mailing_id, dead, 2, utcnow(), lease)
    # Names are unique even for one label in one process: liveness never rests on host or pid.
    assert worker_name("alive") != alive
    with ledger.heartbeat(engine, mailing_id, lambda: [alive], lease):
        time.sleep(3 * lease.total_seconds())
        with engine.begin() as conn:
            retaken = ledger.claim(conn, mailing_id, "resume", 10, utcnow(), lease)
    assert sorted(c.id for c in retaken) == sorted(c.id for c in lost)
    # The silent worker comes back and records its batch: the claim is no longer its to write.
    with engine.begin() as conn:
        assert ledger.record(conn, dead, [Outcome(c.id, "failed", "550 no") for c in lost], utcnow()) == 0
        ledger.release(conn, dead, [c.id for c in lost])
        assert ledger.record(conn, "resume", [Outcome(c.id, "sent") for c in retaken], utcnow()) == 2
        assert ledger.record(conn, alive, [Outcome(c.id, "sent") for c in kept], utcnow()) == 2
    assert set(states(engine, mailing_id).values()) == {"sent"}


def test_an_address_suppressed_after_the_mailing_was_made_is_not_sent(tmp_path: Path, engine: sa.Engine,
                                                                        store_url: str) -> None:
    config, _ = send_config(tmp_path, store_url)
    mailing_id = make_mailing(config, engine, ["a@example.net", "b@example.net"])
    with engine.begin() as conn:
        suppress(conn, "a@example.net", "unsubscribed")
    with engine.begin() as conn:
        claimed = ledger.claim(conn, mailing_id, "w", 5, utcnow(), LEASE)
    assert [c.recipient.email for c in claimed] == ["b@example.net"]
    assert states(engine, mailing_id)["a@example.net"] == "suppressed"


def test_claims_stop_when_the_mailing_is_paused(tmp_path: Path, engine: sa.Engine, store_url: str) -> None:
    config, _ = send_config(tmp_path, store_url)
    mailing_id = make_mailing(config, engine, ["a@example.net"])
    with engine.begin() as conn:
        assert ledger.pause(conn, mailing_id, "too many failures")
        assert ledger.claim(conn, mailing_id, "w", 5, utcnow(), LEASE) == []
        assert ledger.resume(conn, mailing_id)
        assert len(ledger.claim(conn, mailing_id, "w", 5, utcnow(), LEASE)) == 1
        status = conn.scalar(sa.select(schema.mailings.c.paused_reason).where(schema.mailings.c.id == mailing_id))
    assert status is None
