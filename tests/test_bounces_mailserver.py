"""Bounces end to end with real mail servers: our SMTP copies leave through a real Postfix with
VERP envelope senders, Postfix itself bounces the unknown readers and warns about a deferred one,
the notifications land in a real Dovecot mailbox, and `bounces fetch` reads them over IMAP."""

from __future__ import annotations

import mailbox
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from imapclient import IMAPClient

from newsletter import config as config_module
from newsletter.bounces import verp
from newsletter.store import open_store, schema
from tests.support.bouncelab import BOUNCE_PASSWORD, BOUNCE_USER, RETURN_PATH, BounceLab, bounce_lab  # noqa: F401
from tests.support.cli import run_cli, run_json
from tests.support.configs import base_config, write_config
from tests.support.sending import make_mailing

KEY = b"test-secret-key-0123456789abcdefghijkl"
KNOWN = ["alice@readers.example.net", "bob@readers.example.net", "carol@readers.example.net"]
UNKNOWN = ["ghost1@readers.example.net", "ghost2@readers.example.net"]
DEFERRED = ["dave@slow.example.net"]
ENV = {"BOUNCE_MAILBOX_PASSWORD": BOUNCE_PASSWORD}


def inbox_count(lab: BounceLab, folder: str = "INBOX") -> int:
    with IMAPClient("127.0.0.1", port=lab.imap_port, ssl=False, timeout=10) as client:
        client.login(BOUNCE_USER, BOUNCE_PASSWORD)
        return client.select_folder(folder, readonly=True)[b"EXISTS"]


def wait_for_copy(lab: BounceLab, reader: str, timeout: float = 60) -> None:
    folder = lab.maildir(f"readers/{reader.split('@')[0]}")
    deadline = time.monotonic() + timeout
    while not (folder.exists() and len(mailbox.Maildir(folder, create=False))):
        assert time.monotonic() < deadline, f"no copy for {reader}\n{lab.diagnostics()}"
        time.sleep(0.5)


def wait_for_mail(lab: BounceLab, count: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while inbox_count(lab) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{inbox_count(lab)} of {count} notifications arrived\n{lab.diagnostics()}")
        lab.flush()
        time.sleep(1)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_postfix_dsns_reach_dovecot_and_suppress_exactly_the_unknown_readers(
        tmp_path: Path, request: pytest.FixtureRequest, store: str, bounce_lab: BounceLab,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert inbox_count(bounce_lab) == 0, "the bounce mailbox should start empty"
    store_url = f"sqlite:///{tmp_path / 'store.sqlite3'}" if store == "sqlite" else request.getfixturevalue("pg_url")
    data = base_config(store_url)
    data["editions"] = [{"name": "daily-en", "language": "en", "title": "Crime Briefs Daily"}]
    data["transport"] = {"kind": "smtp", "host": "127.0.0.1", "port": bounce_lab.smtp_port, "connections": 2,
                         "retry_base_seconds": 0.2}
    data["bounces"] = {"return_path": RETURN_PATH, "kind": "imap", "host": "127.0.0.1", "port": bounce_lab.imap_port,
                       "tls": "none", "username": BOUNCE_USER, "password_env": "BOUNCE_MAILBOX_PASSWORD"}
    path = write_config(tmp_path, data)
    monkeypatch.setenv("BOUNCE_MAILBOX_PASSWORD", BOUNCE_PASSWORD)
    engine = open_store(store_url)
    mailing_id = make_mailing(config_module.load(path), engine, KNOWN + UNKNOWN + DEFERRED)

    code, sent = run_json("send", "daily-en", config=path, env=ENV)
    assert code == 0, sent
    assert sent["sent"] == 6

    # What the readers got carries a Return-Path that names their own delivery.
    d = schema.deliveries
    with engine.connect() as conn:
        ids = dict(conn.execute(sa.select(d.c.email, d.c.id).where(d.c.mailing_id == mailing_id)).all())
    for reader in KNOWN:
        wait_for_copy(bounce_lab, reader)
    for reader in KNOWN:
        box = mailbox.Maildir(bounce_lab.maildir(f"readers/{reader.split('@')[0]}"), create=False)
        copy = box.get_message(sorted(box.keys())[-1])
        assert verp.delivery_id(KEY, RETURN_PATH, copy["Return-Path"]) == ids[reader]

    # Two bounces (Postfix's own DSNs) and one delay warning arrive in the bounce mailbox.
    wait_for_mail(bounce_lab, 3)
    code, fetched = run_json("bounces", "fetch", config=path, env=ENV)
    assert code == 0, fetched
    assert fetched["read"] == 3
    assert fetched["kinds"]["hard"] == 2 and fetched["kinds"]["soft"] == 1
    assert fetched["suppressed"] == 2
    x, s = schema.suppressions, schema.subscribers
    with engine.connect() as conn:
        assert dict(conn.execute(sa.select(x.c.email, x.c.reason)).all()) == {u: "hard_bounce" for u in UNKNOWN}
        statuses = dict(conn.execute(sa.select(s.c.email, s.c.status)).all())
        soft = conn.execute(sa.select(s.c.soft_bounces).where(s.c.email == DEFERRED[0])).scalar_one()
    assert {e: statuses[e] for e in KNOWN + DEFERRED} == {e: "active" for e in KNOWN + DEFERRED}
    assert soft == 1
    assert inbox_count(bounce_lab) == 0 and inbox_count(bounce_lab, "Processed") == 3

    # Fetching again reads nothing and changes nothing; `status` shows the late bounces.
    code, again = run_json("bounces", "fetch", config=path, env=ENV)
    assert code == 0 and again["read"] == 0
    proc = run_cli("status", "--json", config=path, env=ENV)
    assert proc.returncode == 0, proc.stderr
    # Empty the processed folder for the next store's run.
    with IMAPClient("127.0.0.1", port=bounce_lab.imap_port, ssl=False, timeout=10) as client:
        client.login(BOUNCE_USER, BOUNCE_PASSWORD)
        client.select_folder("Processed")
        client.delete_messages(client.search(["ALL"]))
        client.expunge()
    engine.dispose()
