"""Sending through Postmark, SendGrid and Mailgun batch APIs, against a local server that speaks them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from newsletter.send.dispatch import send_mailing
from newsletter.store import open_store, schema
from tests.support.httpserver import FixtureServer, Reply
from tests.support.providers import DOMAIN, TOKEN, ProviderStub
from tests.support.sending import delivery, make_mailing, send_config, states

LIMITS = {"postmark": 500, "sendgrid": 1000, "mailgun": 1000}


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-0123456789abcdefghijkl")
    monkeypatch.setenv("TEST_API_TOKEN", TOKEN)


@pytest.fixture
def stub(fixture_server: FixtureServer) -> ProviderStub:
    return ProviderStub(fixture_server)


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[sa.Engine]:
    engine = open_store(sqlite_url)
    yield engine
    engine.dispose()


def provider_config(tmp_path: Path, store_url: str, stub: ProviderStub, kind: str, **extra: object):
    config, _ = send_config(tmp_path, store_url, kind=kind, api_url=stub.url, api_token_env="TEST_API_TOKEN",
                            domain=DOMAIN, batch_size=1000, **extra)
    return config


def emails(n: int) -> list[str]:
    return [f"reader{i}@example.net" for i in range(n)]


@pytest.mark.parametrize("kind", ["postmark", "sendgrid", "mailgun"])
def test_batches_give_each_recipient_their_own_copy(tmp_path: Path, engine: sa.Engine, store_url: str,
                                                    stub: ProviderStub, kind: str) -> None:
    n = 1203
    config = provider_config(tmp_path, store_url, stub, kind, connections=2)
    mailing_id = make_mailing(config, engine, emails(n))
    summary = send_mailing(config, engine, mailing_id, worker="test")
    assert summary.status == "done" and summary.sent == n
    assert sorted(stub.recipients()) == sorted(f"Reader {i} <{e}>" for i, e in enumerate(emails(n)))
    assert len(stub.calls) == math.ceil(n / LIMITS[kind])
    by_to = {c.to: c for c in stub.copies}
    seven = by_to["Reader 7 <reader7@example.net>"]
    eight = by_to["Reader 8 <reader8@example.net>"]
    link = seven.headers["List-Unsubscribe"].split(">")[0].lstrip("<")
    assert link.startswith("https://news.example.org/unsubscribe/")
    assert link in seven.html and link in seven.text
    assert link not in eight.html and "reader8@example.net" not in seven.html + seven.text
    assert "Reader 7" in seven.text and "%%nl:" not in seven.html + seven.text
    assert seven.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert seven.subject == "Port corruption, today"
    assert set(states(engine, mailing_id).values()) == {"sent"}
    assert delivery(engine, mailing_id, "reader7@example.net").provider_message_id


def test_postmark_rejections_inside_a_200_are_read_item_by_item(tmp_path: Path, sqlite_engine: sa.Engine,
                                                                 sqlite_url: str, stub: ProviderStub) -> None:
    stub.inactive.add("reader3@example.net")
    stub.invalid.add("reader5@example.net")
    config = provider_config(tmp_path, sqlite_url, stub, "postmark")
    mailing_id = make_mailing(config, sqlite_engine, emails(10))
    summary = send_mailing(config, sqlite_engine, mailing_id, worker="test")
    final = states(sqlite_engine, mailing_id)
    assert final.pop("reader3@example.net") == "failed"
    assert final.pop("reader5@example.net") == "failed"
    assert set(final.values()) == {"sent"} and summary.sent == 8 and summary.failed == 2
    assert "ErrorCode 406" in delivery(sqlite_engine, mailing_id, "reader3@example.net").last_error
    with sqlite_engine.connect() as conn:
        suppressed = dict(conn.execute(sa.select(schema.suppressions.c.email, schema.suppressions.c.reason)).all())
    # Inactive at Postmark means it bounced or complained: never mail it again. A typo is not a bounce.
    assert suppressed == {"reader3@example.net": "hard_bounce"}


def test_sendgrid_refusing_the_call_for_one_address_fails_only_that_one(tmp_path: Path, sqlite_engine: sa.Engine,
                                                                        sqlite_url: str, stub: ProviderStub) -> None:
    stub.invalid.add("reader4@example.net")
    config = provider_config(tmp_path, sqlite_url, stub, "sendgrid")
    mailing_id = make_mailing(config, sqlite_engine, emails(10))
    summary = send_mailing(config, sqlite_engine, mailing_id, worker="test")
    final = states(sqlite_engine, mailing_id)
    assert final.pop("reader4@example.net") == "failed"
    assert set(final.values()) == {"sent"} and summary.sent == 9
    assert sorted(stub.recipients()) == sorted(f"Reader {i} <reader{i}@example.net>" for i in range(10) if i != 4)


@pytest.mark.parametrize("kind", ["postmark", "sendgrid", "mailgun"])
def test_429_with_retry_after_and_5xx_are_retried(tmp_path: Path, sqlite_engine: sa.Engine, sqlite_url: str,
                                                  stub: ProviderStub, kind: str) -> None:
    stub.script = [
        Reply('{"message": "Too many requests"}', 429, headers={"Retry-After": "2"}, content_type="application/json"),
        Reply("<html>Service Unavailable</html>", 503),
    ]
    config = provider_config(tmp_path, sqlite_url, stub, kind, connections=1)
    mailing_id = make_mailing(config, sqlite_engine, emails(30))
    summary = send_mailing(config, sqlite_engine, mailing_id, worker="test")
    assert summary.status == "done" and summary.sent == 30 and summary.retried == 60
    assert sorted(stub.recipients()) == sorted(f"Reader {i} <reader{i}@example.net>" for i in range(30))
    (t429, _, _), (t503, _, _) = stub.calls[:2]
    assert t503 - t429 >= 1.9  # Retry-After: 2 was honoured
    assert delivery(sqlite_engine, mailing_id, "reader1@example.net").attempts == 3


def test_a_timeout_is_retried(tmp_path: Path, sqlite_engine: sa.Engine, sqlite_url: str, stub: ProviderStub) -> None:
    stub.script = [Reply("[]", 200, delay=2.0, content_type="application/json")]
    config = provider_config(tmp_path, sqlite_url, stub, "postmark", timeout_seconds=0.5, connections=1)
    mailing_id = make_mailing(config, sqlite_engine, emails(5))
    summary = send_mailing(config, sqlite_engine, mailing_id, worker="test")
    assert summary.sent == 5 and summary.retried == 5
    assert delivery(sqlite_engine, mailing_id, "reader0@example.net").attempts == 2


def test_a_refused_token_pauses_the_mailing(tmp_path: Path, sqlite_engine: sa.Engine, sqlite_url: str,
                                            stub: ProviderStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_API_TOKEN", "revoked")
    config = provider_config(tmp_path, sqlite_url, stub, "sendgrid")
    mailing_id = make_mailing(config, sqlite_engine, emails(5))
    summary = send_mailing(config, sqlite_engine, mailing_id, worker="test")
    assert summary.status == "paused"
    assert "HTTP 401" in summary.paused_reason and "authorization grant is invalid" in summary.paused_reason
    assert set(states(sqlite_engine, mailing_id).values()) == {"pending"}
