"""`newsletter bounces fetch` on a Maildir, through the real CLI, on SQLite and PostgreSQL: what a
bounce, complaint or auto-reply does to subscribers, once, and what is left for a person."""

from __future__ import annotations

import mailbox
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from newsletter import config as config_module
from newsletter.bounces import verp
from newsletter.digest.message import message_id_digest
from newsletter.store import open_store, schema
from tests.support.bounces import bounce
from tests.support.cli import run_cli, run_json
from tests.support.configs import base_config, write_config
from tests.support.sending import make_mailing

KEY = b"test-secret-key-0123456789abcdefghijkl"
RETURN_PATH = "bounces@news.example.org"
READERS = ["hard@example.net", "soft@example.net", "complains@example.net", "away@example.net",
           "quoted@example.net", "stays@example.net"]


def setup(tmp_path: Path, store_url: str) -> tuple[Path, sa.Engine, int, mailbox.Maildir]:
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    data = base_config(store_url)
    data["editions"] = [{"name": "daily-en", "language": "en", "title": "Crime Briefs Daily"}]
    data["transport"] = {"kind": "outbox", "soft_bounce_limit": 2}
    data["bounces"] = {"return_path": RETURN_PATH, "kind": "maildir", "path": "Maildir"}
    path = write_config(tmp_path, data)
    engine = open_store(store_url)
    mailing_id = make_mailing(config_module.load(path), engine, READERS)
    return path, engine, mailing_id, box


def verp_of(engine: sa.Engine, mailing_id: int, email: str) -> str:
    d = schema.deliveries
    with engine.connect() as conn:
        delivery_id = conn.execute(sa.select(d.c.id).where(d.c.mailing_id == mailing_id, d.c.email == email)).scalar_one()
    return verp.address(KEY, RETURN_PATH, delivery_id)


def subscriber(engine: sa.Engine, email: str) -> sa.Row:
    s = schema.subscribers
    with engine.connect() as conn:
        return conn.execute(sa.select(s.c.status, s.c.soft_bounces).where(s.c.email == email)).one()


def suppressed(engine: sa.Engine) -> dict[str, str]:
    x = schema.suppressions
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(x.c.email, x.c.reason)).all())


def test_fetch_applies_bounces_complaints_and_leaves_the_rest(tmp_path: Path, store_url: str) -> None:
    path, engine, mailing_id, box = setup(tmp_path, store_url)
    box.add(bounce("postfix_hard", rcpt="hard@example.net", verp=verp_of(engine, mailing_id, "hard@example.net")))
    box.add(bounce("postfix_delayed", rcpt="soft@example.net", verp=verp_of(engine, mailing_id, "soft@example.net")))
    box.add(bounce("yahoo_arf", rcpt="complains@example.net",
                   verp=verp_of(engine, mailing_id, "complains@example.net")))
    box.add(bounce("out_of_office", rcpt="away@example.net", verp=verp_of(engine, mailing_id, "away@example.net")))
    box.add(bounce("person", rcpt="stays@example.net", verp=RETURN_PATH))
    # No VERP (a relay that rewrote the envelope), but the DSN quotes our Message-ID: a keyed hash.
    with engine.connect() as conn:
        sid = conn.execute(sa.select(schema.subscribers.c.id)
                           .where(schema.subscribers.c.email == "quoted@example.net")).scalar_one()
    ours = f"<{mailing_id}.{message_id_digest(KEY, mailing_id, str(sid))[:24]}@example.org>"
    box.add(bounce("gmail_hard", rcpt="quoted@example.net", verp=RETURN_PATH, message_id=ours))

    code, data = run_json("bounces", "fetch", config=path)
    assert code == 0, data
    assert data["read"] == 6
    assert data["kinds"] == {"hard": 2, "soft": 1, "complaint": 1, "auto_reply": 1, "unknown": 1}
    assert data["suppressed"] == 3 and data["left_for_person"] == 1
    assert suppressed(engine) == {"hard@example.net": "hard_bounce", "complains@example.net": "complaint",
                                  "quoted@example.net": "hard_bounce"}
    assert subscriber(engine, "hard@example.net").status == "bounced"
    assert subscriber(engine, "complains@example.net").status == "complained"
    assert tuple(subscriber(engine, "soft@example.net")) == ("active", 1)
    assert tuple(subscriber(engine, "away@example.net")) == ("active", 0)
    # Processed mail moved to the processed folder; the person's reply stays, flagged, for a person.
    assert len(box.get_folder("Processed")) == 5
    left = [box.get_message(k) for k in box.keys()]
    assert len(left) == 1 and "F" in left[0].get_flags() and "Could you cover" in left[0].get_payload()
    # The mailing counts its late bounces.
    with engine.connect() as conn:
        late = conn.execute(sa.select(sa.func.count()).select_from(schema.bounce_reports)
                            .where(schema.bounce_reports.c.mailing_id == mailing_id,
                                   schema.bounce_reports.c.kind.in_(("hard", "soft", "complaint")))).scalar_one()
    assert late == 4
    # A second fetch finds nothing new and changes nothing.
    code, again = run_json("bounces", "fetch", config=path)
    assert code == 0 and again["read"] == 0
    assert tuple(subscriber(engine, "soft@example.net")) == ("active", 1)


def test_a_bounce_nobody_signed_suppresses_nobody(tmp_path: Path, store_url: str) -> None:
    """Anyone can mail the bounce address: naming a subscriber is not enough."""
    path, engine, mailing_id, box = setup(tmp_path, store_url)
    box.add(bounce("postfix_hard", rcpt="stays@example.net", verp=RETURN_PATH))
    box.add(bounce("yahoo_arf", rcpt="stays@example.net", verp="bounces+aaaaaaaaaaaaaaaaaaaaaaaaaa@news.example.org"))
    box.add(bounce("exim_plain", rcpt="nobody-here@example.net",
                   verp=verp.address(KEY, RETURN_PATH, 999999)))
    code, data = run_json("bounces", "fetch", config=path)
    assert code == 0 and data["read"] == 3
    assert data["suppressed"] == 0 and data["unmatched"] == 3
    assert suppressed(engine) == {}
    assert tuple(subscriber(engine, "stays@example.net")) == ("active", 0)


def test_soft_bounces_suppress_at_the_limit_and_a_copy_counts_once(tmp_path: Path, store_url: str) -> None:
    path, engine, mailing_id, box = setup(tmp_path, store_url)
    address = verp_of(engine, mailing_id, "soft@example.net")
    first = bounce("postfix_delayed", rcpt="soft@example.net", verp=address)
    box.add(first)
    box.add(first)  # the same notification delivered twice
    run_cli("bounces", "fetch", config=path, check=True)
    assert tuple(subscriber(engine, "soft@example.net")) == ("active", 1)
    box.add(first.replace(b"<20261130100001.7Hd2@relay.example.org>", b"<20261201100001.8Ke3@relay.example.org>"))
    run_cli("bounces", "fetch", config=path, check=True)
    assert subscriber(engine, "soft@example.net").status == "bounced"
    assert suppressed(engine) == {"soft@example.net": "soft_bounce_limit"}


def test_two_fetches_at_once_apply_each_message_once(tmp_path: Path, store_url: str) -> None:
    path, engine, mailing_id, box = setup(tmp_path, store_url)
    address = verp_of(engine, mailing_id, "soft@example.net")
    for day in range(1, 21):
        box.add(bounce("postfix_delayed", rcpt="soft@example.net", verp=address)
                .replace(b"<20261130100001.7Hd2@relay.example.org>", f"<delay.{day}@relay.example.org>".encode()))
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": KEY.decode()}
    cmd = [sys.executable, "-m", "newsletter", "--config", str(path), "bounces", "fetch", "--json"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(schema.bounce_reports)).scalar_one()
    assert rows == 20
    # Twenty soft bounces, each counted once: the limit (2) suppressed the address, the count says 20.
    assert tuple(subscriber(engine, "soft@example.net")) == ("bounced", 20)
    assert len(box.get_folder("Processed")) == 20 and len(box) == 0


def test_a_missing_maildir_and_a_bad_section_say_what_to_fix(tmp_path: Path, sqlite_url: str) -> None:
    data = base_config(sqlite_url)
    data["bounces"] = {"return_path": RETURN_PATH, "kind": "maildir", "path": "nowhere"}
    proc = run_cli("bounces", "fetch", config=write_config(tmp_path, data))
    assert proc.returncode == 2 and "bounces.path" in proc.stderr and "not a Maildir" in proc.stderr
    data["bounces"] = {"return_path": "Bounces <bounces+x@news.example.org>", "kind": "maildir", "path": "m"}
    proc = run_cli("bounces", "fetch", config=write_config(tmp_path, data))
    assert proc.returncode == 2 and "bounces.return_path" in proc.stderr
    data["bounces"] = {"return_path": RETURN_PATH, "kind": "imap", "host": "imap.example.org"}
    proc = run_cli("bounces", "fetch", config=write_config(tmp_path, data))
    assert proc.returncode == 2 and "bounces.username: missing" in proc.stderr


def test_status_and_subscribers_show_say_where_bounces_came_from(tmp_path: Path, sqlite_url: str) -> None:
    path, engine, mailing_id, box = setup(tmp_path, sqlite_url)
    box.add(bounce("postfix_hard", rcpt="hard@example.net", verp=verp_of(engine, mailing_id, "hard@example.net")))
    box.add(bounce("yahoo_arf", rcpt="complains@example.net",
                   verp=verp_of(engine, mailing_id, "complains@example.net")))
    run_cli("bounces", "fetch", config=path, check=True)
    code, status = run_json("status", config=path)
    assert code == 0
    (mailing,) = status["mailings"]
    assert mailing["late_bounces"] == 2
    assert status["bounces"]["counts"] == {"hard_bounce": {"bounce mailbox": 1}, "complaint": {"bounce mailbox": 1}}
    assert {(b["email"], b["kind"], b["source"]) for b in status["bounces"]["newest"]} == {
        ("hard@example.net", "hard_bounce", "bounce mailbox"), ("complains@example.net", "complaint", "bounce mailbox")}
    table = run_cli("status", config=path, env={"COLUMNS": "200"}, check=True).stdout
    assert "Bounces and complaints" in table and "bounce mailbox" in table
    shown = run_cli("subscribers", "show", "hard@example.net", config=path, check=True).stdout
    assert "event: hard_bounce at" in shown and "via bounce mailbox" in shown


def test_run_once_fetches_the_bounce_mailbox(tmp_path: Path, sqlite_url: str) -> None:
    path, engine, mailing_id, box = setup(tmp_path, sqlite_url)
    box.add(bounce("postfix_hard", rcpt="hard@example.net", verp=verp_of(engine, mailing_id, "hard@example.net")))
    code, report = run_json("run", "--once", config=path)
    assert code == 0 and report["bounces"]["read"] == 1 and report["bounces"]["suppressed"] == 1, report
    assert suppressed(engine) == {"hard@example.net": "hard_bounce"}
    # A mailbox that cannot be read is a failure of the run's inputs, named in one line.
    (tmp_path / "Maildir" / "new").rename(tmp_path / "Maildir" / "gone")
    proc = run_cli("run", "--once", config=path)
    assert proc.returncode == 3 and "bounces: bounces.path" in proc.stderr
