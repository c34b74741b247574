"""Sending through SMTP to real aiosmtpd servers on 127.0.0.1, with the ledger on SQLite and PostgreSQL."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.digest import MailingContent
from newsletter.errors import TransportError
from newsletter.send.dispatch import send_mailing
from newsletter.send.smtp import tls_context
from newsletter.send.testcopy import send_test
from newsletter.store import open_store, schema
from tests.support.sending import delivery, mailing, make_mailing, send_config, states
from tests.support.smtpd import Behaviour, SMTPServer, self_signed
from tests.support.tlsca import TestCA


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-0123456789abcdefghijkl")


def emails(n: int, domain: str = "example.net") -> list[str]:
    return [f"reader{i}@{domain}" for i in range(n)]


def test_every_subscriber_gets_one_personal_copy(tmp_path: Path, engine: sa.Engine, store_url: str) -> None:
    with SMTPServer() as server:
        config, _ = send_config(tmp_path, store_url, kind="smtp", port=server.port, connections=3)
        mailing_id = make_mailing(config, engine, emails(45))
        summary = send_mailing(config, engine, mailing_id, worker="test")
    assert summary.status == "done" and summary.sent == 45 and summary.failed == 0
    assert sorted(server.recorder.recipients()) == sorted(emails(45))
    assert set(states(engine, mailing_id).values()) == {"sent"}
    copy = server.recorder.parsed("reader7@example.net")
    other = server.recorder.parsed("reader8@example.net")
    assert copy["To"] == "Reader 7 <reader7@example.net>"
    assert copy["List-Unsubscribe"] != other["List-Unsubscribe"]
    unsubscribe = copy["List-Unsubscribe"].split(">")[0].lstrip("<")
    assert unsubscribe in copy.get_payload()[0].get_payload(decode=True).decode()
    assert "reader8@example.net" not in server.recorder.messages[0][1].decode() or copy["To"].endswith("reader8@example.net>")
    assert mailing(engine, mailing_id).finished_at is not None


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-command-at-a-time"])
def test_refusals_are_handled_one_by_one(tmp_path: Path, engine: sa.Engine, store_url: str, pipelining: bool) -> None:
    behaviour = Behaviour(pipelining=pipelining, refuse={
        "gone@example.net": ("550 5.1.1 no such mailbox", 0),
        "later@example.net": ("451 4.3.0 try again later", 1),
        "busy@example.net": ("421 4.7.0 too busy, closing", 1),
    })
    addresses = ["gone@example.net", "later@example.net", "busy@example.net"] + emails(10)
    with SMTPServer(behaviour) as server:
        config, _ = send_config(tmp_path, store_url, kind="smtp", port=server.port, connections=1,
                                failure_min=100)
        mailing_id = make_mailing(config, engine, addresses)
        summary = send_mailing(config, engine, mailing_id, worker="test")
    final = states(engine, mailing_id)
    assert final.pop("gone@example.net") == "failed"
    assert set(final.values()) == {"sent"}
    assert summary.retried == 2 and summary.failed == 1 and summary.sent == 12
    assert sorted(server.recorder.recipients()) == sorted(addresses[1:])
    later = delivery(engine, mailing_id, "later@example.net")
    assert later.attempts == 2
    gone = delivery(engine, mailing_id, "gone@example.net")
    assert "550" in gone.last_error
    with engine.connect() as conn:
        reason = conn.scalar(sa.select(schema.suppressions.c.reason).where(schema.suppressions.c.email == "gone@example.net"))
    assert reason == "hard_bounce"


def test_dropped_connections_are_reopened_without_losing_or_doubling(tmp_path: Path, engine: sa.Engine,
                                                                       store_url: str) -> None:
    with SMTPServer(Behaviour(drop_every=7)) as server:
        config, _ = send_config(tmp_path, store_url, kind="smtp", port=server.port, connections=2)
        mailing_id = make_mailing(config, engine, emails(40))
        summary = send_mailing(config, engine, mailing_id, worker="test")
    assert server.recorder.drops >= 5
    assert summary.status == "done" and summary.sent == 40
    assert sorted(server.recorder.recipients()) == sorted(emails(40))


def test_starttls_and_login(tmp_path: Path, engine: sa.Engine, store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    context, cert = self_signed(tmp_path)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    with SMTPServer(tls=context, login=("sender", "s3cret")) as server:
        config, _ = send_config(tmp_path, store_url, kind="smtp", port=server.port, starttls=True,
                                username="sender", password_env="TEST_SMTP_PASSWORD", ca_file=str(cert))
        mailing_id = make_mailing(config, engine, emails(5))
        summary = send_mailing(config, engine, mailing_id, worker="test")
    assert summary.sent == 5
    assert len(server.recorder.messages) == 5


def test_wrong_password_pauses_the_mailing_and_fails_nobody(tmp_path: Path, sqlite_url: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    context, cert = self_signed(tmp_path)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    engine = open_store(sqlite_url)
    with SMTPServer(tls=context, login=("sender", "s3cret")) as server:
        config, _ = send_config(tmp_path, sqlite_url, kind="smtp", port=server.port, starttls=True,
                                username="sender", password_env="TEST_SMTP_PASSWORD", ca_file=str(cert))
        mailing_id = make_mailing(config, engine, emails(5))
        summary = send_mailing(config, engine, mailing_id, worker="test")
    assert summary.status == "paused"
    assert "login as 'sender' refused" in summary.paused_reason and "transport.password_env" in summary.paused_reason
    assert set(states(engine, mailing_id).values()) == {"pending"}
    assert server.recorder.messages == []


def test_a_4xx_that_outlasts_the_retries_is_a_soft_bounce_until_the_limit_suppresses(
        tmp_path: Path, engine: sa.Engine, store_url: str) -> None:
    from newsletter.send.ledger import create_deliveries
    from newsletter.subscribers import audience

    behaviour = Behaviour(refuse={"full@example.net": ("452 4.2.2 mailbox full", 0)})
    addresses = ["full@example.net"] + emails(3)
    s = schema.subscribers
    with SMTPServer(behaviour) as server:
        config, _ = send_config(tmp_path, store_url, kind="smtp", port=server.port, connections=1, retries=1,
                                soft_bounce_limit=2, failure_min=100)
        first = make_mailing(config, engine, addresses)
        send_mailing(config, engine, first, worker="test")
        with engine.connect() as conn:
            after_one = conn.execute(sa.select(s.c.status, s.c.soft_bounces)
                                     .where(s.c.email == "full@example.net")).one()
        # The next day's mailing: the same refusal, past the retries again, reaches the limit.
        row = mailing(engine, first)
        with engine.begin() as conn:
            second = conn.execute(schema.mailings.insert().values(
                edition="daily-en", slot="2026-03-03T12:00:00+00:00", language="en", status="sending",
                subject="Port corruption, again", preheader="", brief_ids=[2], cutoff=row.cutoff, html=row.html,
                text=row.text, content_hash="c0ffee", created_at=row.created_at,
            )).inserted_primary_key[0]
            create_deliveries(conn, second, audience(conn, config.edition("daily-en"), []))
        send_mailing(config, engine, second, worker="test")
    assert states(engine, first)["full@example.net"] == "failed"
    assert after_one == ("active", 1)
    assert states(engine, second)["full@example.net"] == "failed"
    assert "gave up after 2 attempts" in delivery(engine, second, "full@example.net").last_error
    with engine.connect() as conn:
        status = conn.scalar(sa.select(s.c.status).where(s.c.email == "full@example.net"))
        reason = conn.scalar(sa.select(schema.suppressions.c.reason)
                             .where(schema.suppressions.c.email == "full@example.net"))
        others = conn.execute(sa.select(s.c.soft_bounces).where(s.c.email != "full@example.net")).scalars().all()
    assert (status, reason) == ("bounced", "soft_bounce_limit")
    assert others == [0, 0, 0]


def test_ehlo_is_the_senders_domain_unless_ehlo_name_says_otherwise(tmp_path: Path, sqlite_url: str) -> None:
    engine = open_store(sqlite_url)
    with SMTPServer() as server:
        config, _ = send_config(tmp_path, sqlite_url, kind="smtp", port=server.port, connections=1)
        send_mailing(config, engine, make_mailing(config, engine, emails(2)), worker="test")
        config, _ = send_config(tmp_path, sqlite_url, kind="smtp", port=server.port, connections=1,
                                ehlo_name="relay-client.example.org")
        send_test(config, MailingContent.from_row(mailing(engine, 1)), "one@example.net")
    # base_config's sender is news@example.org; never an IP literal, whatever this host is called.
    assert server.recorder.ehlo_names == ["example.org", "relay-client.example.org"]
    engine.dispose()


def test_ca_file_adds_to_the_system_trust_rather_than_replacing_it(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    system = ssl.create_default_context().cert_store_stats()["x509_ca"]
    assert tls_context(ca.cert).cert_store_stats()["x509_ca"] == system + 1


def test_starttls_to_a_relay_of_a_private_ca_that_wants_a_client_certificate(tmp_path: Path, sqlite_url: str) -> None:
    ca = TestCA(tmp_path / "ca")
    issued, client = ca.server(), ca.client("newsletter.example.org")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert, issued.key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(ca.cert)
    engine = open_store(sqlite_url)
    with SMTPServer(tls=context) as server:
        config, _ = send_config(tmp_path, sqlite_url, kind="smtp", port=server.port, starttls=True, connections=1,
                                ca_file=str(ca.cert), client_cert=str(client.cert), client_key=str(client.key))
        summary = send_mailing(config, engine, make_mailing(config, engine, emails(3)), worker="test")
        # Without ca_file the relay's certificate is not trusted, and the error says what to set.
        config, _ = send_config(tmp_path, sqlite_url, kind="smtp", port=server.port, starttls=True, connections=1)
        with pytest.raises(TransportError, match="not trusted.*set transport.ca_file"):
            send_test(config, MailingContent.from_row(mailing(engine, 1)), "one@example.net")
    assert summary.sent == 3
    assert {dict(x[0] for x in p["subject"])["commonName"] for p in server.recorder.peer_certs} == {
        "newsletter.example.org"}
    engine.dispose()


def test_starttls_asked_of_a_relay_without_it_names_the_setting(tmp_path: Path, sqlite_url: str) -> None:
    engine = open_store(sqlite_url)
    with SMTPServer() as server:
        config, _ = send_config(tmp_path, sqlite_url, kind="smtp", port=server.port, starttls=True, connections=1)
        summary = send_mailing(config, engine, make_mailing(config, engine, emails(2)), worker="test")
    assert summary.status == "paused"
    assert "does not offer STARTTLS; set transport.starttls = false" in summary.paused_reason
    assert set(states(engine, summary.mailing_id).values()) == {"pending"}
    engine.dispose()
