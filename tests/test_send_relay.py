"""Sending through a real Postfix relay (STARTTLS on a private CA, SASL AUTH through Dovecot),
judged by the relay's own log: every copy accepted exactly once, from our login, with our EHLO."""

from __future__ import annotations

import collections
import email
import uuid
from pathlib import Path

import pytest

from newsletter.digest import MailingContent
from newsletter.errors import TransportError
from newsletter.send.dispatch import send_mailing
from newsletter.send.testcopy import send_test
from newsletter.store import open_store
from tests.support.mailserver import PostfixRelay, postfix_relay  # noqa: F401 (the fixture)
from tests.support.sending import mailing, make_mailing, send_config, states

USER, PASSWORD = "newsletter", "relay-s3cret"


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, postfix_relay: PostfixRelay) -> None:  # noqa: F811
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-0123456789abcdefghijkl")
    monkeypatch.setenv("TEST_RELAY_PASSWORD", PASSWORD)
    postfix_relay.add_user(USER, PASSWORD)


def relay_config(tmp_path: Path, store_url: str, relay: PostfixRelay, **transport: object):
    return send_config(tmp_path, store_url, kind="smtp", host="127.0.0.1", port=relay.port, starttls=True,
                       ca_file=str(relay.ca.cert), username=USER, password_env="TEST_RELAY_PASSWORD", **transport)


@pytest.mark.parametrize("ehlo_name", ["", "sender-host.example.org"])
def test_every_copy_is_accepted_once_by_the_relay_with_our_login_and_ehlo(
        tmp_path: Path, store_url: str, postfix_relay: PostfixRelay, ehlo_name: str) -> None:  # noqa: F811
    relay = postfix_relay
    n = 24
    domain = f"relay-{uuid.uuid4().hex[:8]}.example.net"  # the relay and its sink live for the whole session
    addresses = [f"reader{i}@{domain}" for i in range(n)]
    engine = open_store(store_url)
    seen_before = {a.queue_id for a in relay.accepted()}
    sunk_before = len(relay.sink.recorder.messages)
    config, _ = relay_config(tmp_path, store_url, relay, connections=2, ehlo_name=ehlo_name)
    mailing_id = make_mailing(config, engine, addresses)
    summary = send_mailing(config, engine, mailing_id, worker="test")
    assert summary.status == "done" and summary.sent == n
    assert set(states(engine, mailing_id).values()) == {"sent"}
    relay.wait_until_relayed(sunk_before + n)
    ours = [(r, email.message_from_bytes(m)) for r, m in relay.sink.recorder.messages if r.endswith("@" + domain)]
    assert sorted(r for r, _ in ours) == sorted(addresses)
    copy_ids = {m["Message-ID"].strip("<>") for _, m in ours}
    assert len(copy_ids) == n
    in_log = [a for a in relay.accepted() if a.queue_id not in seen_before]
    # The relay's own record: each copy accepted exactly once, authenticated, greeted as configured.
    assert collections.Counter(a.message_id for a in in_log) == dict.fromkeys(copy_ids, 1)
    assert {a.sasl_username for a in in_log} == {USER}
    assert {a.helo for a in in_log} == {ehlo_name or "example.org"}
    assert all(a.relayed for a in in_log)
    engine.dispose()


def test_a_relay_refusal_names_the_setting_to_change(tmp_path: Path, sqlite_url: str,
                                                     postfix_relay: PostfixRelay,  # noqa: F811
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    relay = postfix_relay
    engine = open_store(sqlite_url)
    config, _ = relay_config(tmp_path, sqlite_url, relay)
    mailing_id = make_mailing(config, engine, ["one@refusals.example.net"])
    copy = MailingContent.from_row(mailing(engine, mailing_id))
    untrusted, _ = send_config(tmp_path, sqlite_url, kind="smtp", host="127.0.0.1", port=relay.port, starttls=True,
                               username=USER, password_env="TEST_RELAY_PASSWORD")
    with pytest.raises(TransportError, match="not trusted.*transport.ca_file"):
        send_test(untrusted, copy, "one@refusals.example.net")
    plain, _ = send_config(tmp_path, sqlite_url, kind="smtp", host="127.0.0.1", port=relay.port,
                           username=USER, password_env="TEST_RELAY_PASSWORD")
    with pytest.raises(TransportError, match="offers no AUTH; set transport.starttls = true"):
        send_test(plain, copy, "one@refusals.example.net")
    monkeypatch.setenv("TEST_RELAY_PASSWORD", "wrong")
    config, _ = relay_config(tmp_path, sqlite_url, relay)
    summary = send_mailing(config, engine, mailing_id, worker="test")
    assert summary.status == "paused"
    assert "login as 'newsletter' refused: 535" in summary.paused_reason
    assert "transport.password_env" in summary.paused_reason
    assert set(states(engine, mailing_id).values()) == {"pending"}
    assert not [a for a in relay.accepted() if a.sasl_username is None]
    engine.dispose()


def test_the_relay_harness_reads_its_log_and_users(postfix_relay: PostfixRelay) -> None:  # noqa: F811
    assert "daemon started" in postfix_relay.log()
    assert f"{USER}:{{PLAIN}}{PASSWORD}" in postfix_relay.users_file.read_text()
