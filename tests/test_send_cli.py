"""`newsletter send` as operators run it: two workers, pauses, rate, dry run, --to (kill -9 and stops: test_send_recovery)."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.send.smtp import SMTP_BATCH
from newsletter.store import open_store, schema, utcnow
from newsletter.subscribers import suppress
from tests.support.editions import add_brief
from tests.support.cli import run_cli, run_json
from tests.support.sending import add_subscribers, delivery, make_mailing, mailing, send_config, states
from tests.support.smtpd import Behaviour, SMTPServer

ENV = {"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdefghijkl"}


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-0123456789abcdefghijkl")


def emails(n: int) -> list[str]:
    return [f"reader{i}@example.net" for i in range(n)]


def popen_send(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(config), "send", "daily-en", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV})


def wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.postgresql
def test_two_workers_on_postgresql_share_a_mailing_and_send_nothing_twice(tmp_path: Path, pg_url: str) -> None:
    n = 400
    with SMTPServer(Behaviour(delay=0.005)) as server:
        config, path = send_config(tmp_path, pg_url, kind="smtp", port=server.port, connections=2)
        engine = open_store(pg_url)
        mailing_id = make_mailing(config, engine, emails(n))
        first, second = popen_send(path, "--resume", "--json"), popen_send(path, "--resume", "--json")
        outs = [p.communicate(timeout=240) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    summaries = [json.loads(out) for out, _ in outs]
    assert sum(s["sent"] for s in summaries) == n
    assert all(s["sent"] > 0 for s in summaries)
    received = collections.Counter(server.recorder.recipients())
    assert set(received) == set(emails(n)) and max(received.values()) == 1
    assert set(states(engine, mailing_id).values()) == {"sent"}
    engine.dispose()


def test_failures_past_the_threshold_pause_the_mailing_until_resumed(tmp_path: Path, sqlite_url: str) -> None:
    n = 100
    refuse_all = {e: ("550 5.7.1 relaying denied", 0) for e in emails(n)}
    with SMTPServer(Behaviour(refuse=refuse_all)) as server:
        config, path = send_config(tmp_path, sqlite_url, kind="smtp", port=server.port, connections=1,
                                   failure_min=10, failure_threshold=0.5)
        engine = open_store(sqlite_url)
        mailing_id = make_mailing(config, engine, emails(n))
        paused = run_cli("send", "daily-en", config=path, env=ENV)
    assert paused.returncode == 1
    assert "is paused" in paused.stderr and "finished deliveries failed" in paused.stderr
    row = mailing(engine, mailing_id)
    assert row.status == "paused" and "550 5.7.1 relaying denied" in row.paused_reason
    counts = collections.Counter(states(engine, mailing_id).values())
    assert counts["failed"] <= SMTP_BATCH and counts["pending"] >= n - SMTP_BATCH
    code, status = run_json("status", config=path, env=ENV)
    shown = next(m for m in status["mailings"] if m["id"] == mailing_id)
    assert shown["status"] == "paused" and shown["deliveries"]["failed"] == counts["failed"]
    # The operator fixed the relay; resume sends the rest.
    with SMTPServer() as fixed:
        config, path = send_config(tmp_path, sqlite_url, kind="smtp", port=fixed.port, connections=1,
                                   failure_min=10, failure_threshold=0.5)
        code, summary = run_json("send", "daily-en", "--resume", config=path, env=ENV)
    assert code == 0 and summary["status"] == "done" and summary["sent"] == counts["pending"]
    assert len(fixed.recorder.messages) == counts["pending"]
    engine.dispose()


def test_rate_limit_spreads_messages_over_time(tmp_path: Path, sqlite_url: str) -> None:
    n, rate, burst = 45, 20, 5
    with SMTPServer() as server:
        config, path = send_config(tmp_path, sqlite_url, kind="smtp", port=server.port, connections=3,
                                   rate_per_second=rate, burst=burst)
        engine = open_store(sqlite_url)
        make_mailing(config, engine, emails(n))
        code, summary = run_json("send", "daily-en", config=path, env=ENV)
    assert code == 0 and summary["sent"] == n
    times = sorted(server.recorder.times)
    assert times[-1] - times[0] >= (n - burst) / rate * 0.95
    for i, start in enumerate(times):
        in_a_second = sum(1 for t in times[i:] if t < start + 1.0)
        assert in_a_second <= burst + rate + 1
    engine.dispose()


def test_dry_run_renders_and_counts_and_changes_nothing(tmp_path: Path, sqlite_url: str) -> None:
    config, path = send_config(tmp_path, sqlite_url)
    engine = open_store(sqlite_url)
    mailing_id = make_mailing(config, engine, emails(20))
    with engine.begin() as conn:
        suppress(conn, "reader3@example.net", "unsubscribed")
    code, summary = run_json("send", "daily-en", "--dry-run", config=path, env=ENV)
    assert code == 0 and summary["dry_run"] and summary["would_send"] == 19 and summary["suppressed"] == 1
    assert summary["sent"] == 0
    assert set(states(engine, mailing_id).values()) == {"pending"}
    assert not (tmp_path / "outbox").exists() or not list((tmp_path / "outbox").iterdir())
    engine.dispose()


def test_to_sends_one_test_copy_and_records_nothing(tmp_path: Path, sqlite_url: str) -> None:
    config, path = send_config(tmp_path, sqlite_url)
    engine = open_store(sqlite_url)
    mailing_id = make_mailing(config, engine, emails(3))
    code, out = run_json("send", "daily-en", "--to", "editor@example.org", config=path, env=ENV)
    assert code == 0 and out["mailing_id"] == mailing_id
    (eml,) = (tmp_path / "outbox").iterdir()
    message = message_from_bytes(eml.read_bytes())
    assert message["To"] == "editor@example.org" and message["Subject"] == "Port corruption, today"
    assert set(states(engine, mailing_id).values()) == {"pending"}
    bad = run_cli("send", "daily-en", "--to", "editor@@example", config=path, env=ENV)
    assert bad.returncode != 0 and "--to: 'editor@@example' is not a valid email address" in bad.stderr
    clash = run_cli("send", "daily-en", "--to", "editor@example.org", "--resume", config=path, env=ENV)
    assert clash.returncode != 0 and "use one or the other" in clash.stderr
    assert len(list((tmp_path / "outbox").iterdir())) == 1
    engine.dispose()


def test_send_makes_the_mailing_when_there_is_news_and_says_so_when_there_is_none(tmp_path: Path,
                                                                                   sqlite_url: str) -> None:
    config, path = send_config(tmp_path, sqlite_url)
    nothing = run_cli("send", "daily-en", config=path, env=ENV)
    assert nothing.returncode == 0 and "nothing to send" in nothing.stdout
    no_resume = run_cli("send", "daily-en", "--resume", config=path, env=ENV)
    assert no_resume.returncode != 0
    assert no_resume.stderr.strip().splitlines()[-1] == (
        "newsletter: error: edition 'daily-en' has no unfinished mailing to resume")
    engine = open_store(sqlite_url)
    add_subscribers(engine, emails(4))
    add_brief(engine, "port-raid", seen=utcnow())
    proc = run_cli("send", "daily-en", "--json", config=path, env=ENV)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "done" and summary["sent"] == 4
    assert {"sent", "failed", "suppressed", "retried", "duration_seconds", "per_second"} <= set(summary)
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 4
    human = run_cli("status", config=path, env=ENV)
    assert "done" in human.stdout
    again = run_cli("send", "daily-en", config=path, env=ENV)
    assert again.returncode == 0 and "nothing to send" in again.stdout
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.mailings)) == 1
    engine.dispose()


def table_ids(config: Path, *args: str) -> list[str]:
    """The ids in the first column of `newsletter status`'s mailings table, top to bottom."""
    proc = run_cli("status", *args, config=config, env={**ENV, "COLUMNS": "200"}, check=True)
    mailings_table = proc.stdout.split("Mailings", 1)[1]
    cells = [line.split("│") for line in mailings_table.splitlines() if line.count("│") > 5]
    return [c[1].strip() for c in cells if c[1].strip().isdigit()]


def test_status_shows_every_mailing_with_its_counts_and_limit_keeps_the_newest(tmp_path: Path,
                                                                             sqlite_url: str) -> None:
    config, path = send_config(tmp_path, sqlite_url)
    engine = open_store(sqlite_url)
    first = make_mailing(config, engine, emails(3))
    row = mailing(engine, first)
    d = schema.deliveries
    with engine.begin() as conn:
        subscriber_ids = conn.execute(sa.select(schema.subscribers.c.id, schema.subscribers.c.email)).all()
        for day in range(1, 25):  # 25 mailings in all, more than the 20 status used to show
            mailing_id = conn.execute(schema.mailings.insert().values(
                edition="daily-en", slot=f"2026-04-{day:02d}T12:00:00+00:00", language="en", status="done",
                subject=row.subject, preheader="", brief_ids=[day], cutoff=row.cutoff, html=row.html, text=row.text,
                content_hash="c0ffee", created_at=row.created_at,
            )).inserted_primary_key[0]
            conn.execute(d.insert(), [
                {"mailing_id": mailing_id, "subscriber_id": sid, "email": email, "attempts": 1,
                 "state": "failed" if i < day % 3 else "sent"}
                for i, (sid, email) in enumerate(subscriber_ids)])
    code, report = run_json("status", config=path, env=ENV)
    assert code == 0
    listed = report["mailings"]
    assert [m["id"] for m in listed] == list(range(first + 24, first - 1, -1))
    assert listed[-1]["deliveries"] == {"pending": 3, "sending": 0, "sent": 0, "failed": 0, "suppressed": 0, "skipped": 0}
    by_slot = {m["slot"]: m["deliveries"] for m in listed}
    assert by_slot["2026-04-05T12:00:00+00:00"]["failed"] == 2 and by_slot["2026-04-05T12:00:00+00:00"]["sent"] == 1
    assert table_ids(path) == [str(m["id"]) for m in listed]
    code, newest = run_json("status", "--limit", "3", config=path, env=ENV)
    assert code == 0 and [m["id"] for m in newest["mailings"]] == [first + 24, first + 23, first + 22]
    assert table_ids(path, "--limit", "3") == [str(first + 24), str(first + 23), str(first + 22)]
    refused = run_cli("status", "--limit", "0", config=path, env=ENV)
    assert refused.returncode != 0 and "1 or more" in refused.stderr
    engine.dispose()


def test_to_before_any_mailing_sends_a_draft_of_the_next_one_and_stores_nothing(tmp_path: Path,
                                                                                sqlite_url: str) -> None:
    config, path = send_config(tmp_path, sqlite_url)
    outbox = tmp_path / "outbox"
    nothing = run_cli("send", "daily-en", "--to", "editor@example.org", config=path, env=ENV)
    assert nothing.returncode == 0, nothing.stderr
    assert "no mailing yet and no new briefs" in nothing.stdout and "nothing sent" in nothing.stdout
    assert not outbox.exists() or not list(outbox.iterdir())
    engine = open_store(sqlite_url)
    add_subscribers(engine, emails(2))
    add_brief(engine, "archive-raid", seen=utcnow() - timedelta(days=30))  # before the first mailing's lookback
    add_brief(engine, "port-raid", seen=utcnow())
    code, rendered = run_json("send", "daily-en", "--to", "editor@example.org", "--dry-run", config=path, env=ENV)
    assert code == 0 and rendered["draft"] and rendered["sent"] == 0 and rendered["bytes"] > 1000
    assert not outbox.exists() or not list(outbox.iterdir())
    code, sent = run_json("send", "daily-en", "--to", "editor@example.org", config=path, env=ENV)
    assert code == 0 and sent["draft"] and sent["mailing_id"] is None and sent["briefs"] == 1 and sent["sent"] == 1
    (eml,) = outbox.iterdir()
    message = message_from_bytes(eml.read_bytes())
    body = message.get_payload()[0].get_payload(decode=True).decode()
    assert message["To"] == "editor@example.org" and message["Subject"] == sent["subject"]
    assert "Brief port-raid" in body and "Brief archive-raid" not in body
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.mailings)) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.deliveries)) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(schema.schedule_slots)) == 0
    eml.unlink()
    # The real send then makes the mailing the test showed.
    code, summary = run_json("send", "daily-en", config=path, env=ENV)
    assert code == 0 and summary["sent"] == 2
    assert mailing(engine, summary["mailing_id"]).subject == sent["subject"]
    engine.dispose()


def test_an_internationalised_address_gets_its_copy_and_one_that_needs_smtputf8_fails_alone(
        tmp_path: Path, sqlite_url: str) -> None:
    # Stored as the list keeps them (normalised, the domain in Unicode), as an older import could have.
    stored = ["a@example.net", "ana@bücher.de", "josé@example.com", "b@example.net"]
    with SMTPServer(Behaviour()) as server:
        config, path = send_config(tmp_path, sqlite_url, kind="smtp", port=server.port, connections=1)
        engine = open_store(sqlite_url)
        mailing_id = make_mailing(config, engine, stored)
        done = run_cli("send", "daily-en", config=path, env=ENV)
    assert done.returncode == 0, done.stderr
    assert "crashed" not in done.stderr
    assert "sent 3, failed 1" in done.stdout
    # The IDN domain travels in its ASCII (IDNA) form, in RCPT TO and in To.
    assert sorted(server.recorder.recipients()) == ["a@example.net", "ana@xn--bcher-kva.de", "b@example.net"]
    assert server.recorder.parsed("ana@xn--bcher-kva.de")["To"].endswith("<ana@xn--bcher-kva.de>")
    assert states(engine, mailing_id) == {"a@example.net": "sent", "ana@bücher.de": "sent",
                                          "josé@example.com": "failed", "b@example.net": "sent"}
    failed = delivery(engine, mailing_id, "josé@example.com")
    assert "SMTPUTF8" in failed.last_error and failed.attempts == 1
    assert mailing(engine, mailing_id).status == "done"
    engine.dispose()
