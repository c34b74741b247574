"""Per-reader copies on a real SQLite file and a real PostgreSQL: each subscriber gets the briefs
about the countries they chose, each distinct set rendered once, sent exactly once."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from newsletter import contents, editions
from newsletter.digest.i18n import messages
from newsletter.send.dispatch import send_mailing
from newsletter.slots import slot_id
from newsletter.store import schema
from tests.support.cli import run_json
from tests.support.configs import base_config, write_config
from tests.support.editions import T0, add_brief, add_subscriber, deliveries, make_config

HOUR = timedelta(hours=1)
READERS = {
    "everything@example.net": (),
    "ecuador@example.net": ("ecuador",),
    "colombia@example.net": ("colombia",),
    "both@example.net": ("colombia", "ecuador"),
    "peru@example.net": ("peru",),
}


def setup_mailing(engine: sa.Engine, tmp_path: Path):
    config = make_config(str(engine.url), tmp_path)
    add_brief(engine, "bogota", seen=T0 - 3 * HOUR, countries=("colombia",), published=T0 - 3 * HOUR)
    add_brief(engine, "quito", seen=T0 - 2 * HOUR, countries=("ecuador",), published=T0 - 2 * HOUR)
    add_brief(engine, "border", seen=T0 - HOUR, countries=("colombia", "venezuela"), published=T0 - HOUR)
    for address, countries in READERS.items():
        add_subscriber(engine, address, countries=countries)
    mailing_id = editions.prepare_mailing(config, engine, "daily-en", slot=slot_id(T0), now=T0)
    assert mailing_id
    return config, mailing_id


def received(outbox: Path) -> dict[str, email.message.EmailMessage]:
    messages = {}
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        messages[message["To"].addresses[0].addr_spec] = message
    return messages


def titles(message: email.message.EmailMessage) -> list[str]:
    text = message.get_body(("plain",)).get_content()
    return [line for line in text.splitlines() if line.startswith("Brief ")]


def test_each_reader_gets_the_briefs_of_their_countries_once(engine: sa.Engine, tmp_path: Path) -> None:
    config, mailing_id = setup_mailing(engine, tmp_path)
    rows = {d.email: d for d in deliveries(engine, mailing_id)}
    assert rows["peru@example.net"].state == "skipped"
    assert "peru" in rows["peru@example.net"].last_error
    assert {e: d.state for e, d in rows.items() if e != "peru@example.net"} == dict.fromkeys(
        set(READERS) - {"peru@example.net"}, "pending")
    # Whole mailing for those who chose nothing or whose countries cover every brief.
    assert rows["everything@example.net"].content_key is None and rows["both@example.net"].content_key is None
    with engine.connect() as conn:
        stored = conn.execute(sa.select(schema.mailing_contents).where(
            schema.mailing_contents.c.mailing_id == mailing_id)).all()
    assert len(stored) == 2  # {quito} and {border, bogota}: each distinct set rendered and frozen once

    summary = send_mailing(config, engine, mailing_id, worker="test")
    assert (summary.sent, summary.failed, summary.skipped) == (4, 0, 1)
    assert summary.status == "done"
    mail = received(tmp_path / "outbox")
    assert set(mail) == set(READERS) - {"peru@example.net"}
    assert titles(mail["everything@example.net"]) == ["Brief border", "Brief quito", "Brief bogota"]
    assert titles(mail["both@example.net"]) == ["Brief border", "Brief quito", "Brief bogota"]
    assert titles(mail["colombia@example.net"]) == ["Brief border", "Brief bogota"]
    assert titles(mail["ecuador@example.net"]) == ["Brief quito"]
    # The subject, preheader and intro describe that copy, not the whole mailing.
    ecuador = mail["ecuador@example.net"]
    assert "Ecuador" in ecuador["Subject"] and "Colombia" not in ecuador["Subject"]
    assert "Colombia" in mail["colombia@example.net"]["Subject"] and "Ecuador" not in mail["colombia@example.net"]["Subject"]
    ecuador_html = ecuador.get_body(("html",)).get_content()
    assert "Brief quito" in ecuador_html and "Brief bogota" not in ecuador_html
    words = messages("en")
    intro_one = words["intro_one"].format(count=1, publication="Crime Briefs Test")
    intro_three = words["intro_many"].format(count=3, publication="Crime Briefs Test")
    assert intro_one in " ".join(ecuador.get_body(("plain",)).get_content().split())
    assert intro_three in " ".join(mail["everything@example.net"].get_body(("plain",)).get_content().split())

    # Exactly once: a second send finds nothing left and sends nothing more.
    again = send_mailing(config, engine, mailing_id, worker="test-again")
    assert again.sent == 0 and len(list((tmp_path / "outbox").glob("*.eml"))) == 4
    assert again.totals == {"pending": 0, "sending": 0, "sent": 4, "failed": 0, "suppressed": 0, "skipped": 1}


def test_a_copy_is_frozen_when_the_mailing_is_created(engine: sa.Engine, tmp_path: Path) -> None:
    config, mailing_id = setup_mailing(engine, tmp_path)
    # A reader changing their countries after creation does not change the copy they were given.
    with engine.begin() as conn:
        conn.execute(schema.subscribers.update().where(schema.subscribers.c.email == "ecuador@example.net")
                     .values(countries=["colombia"]))
        conn.execute(schema.briefs.update().values(title="Edited title"))
    send_mailing(config, engine, mailing_id, worker="test")
    mail = received(tmp_path / "outbox")
    assert titles(mail["ecuador@example.net"]) == ["Brief quito"]


def test_status_and_send_cli_count_skipped(engine: sa.Engine, tmp_path: Path) -> None:
    data = base_config(str(engine.url))
    data["editions"] = [{"name": "daily-en", "language": "en", "lookback_hours": 100000}]
    path = write_config(tmp_path, data)
    add_brief(engine, "quito", seen=T0 - HOUR, countries=("ecuador",))
    add_subscriber(engine, "ecuador@example.net", countries=("ecuador",))
    add_subscriber(engine, "peru@example.net", countries=("peru",))
    code, summary = run_json("send", "daily-en", config=path)
    assert code == 0, summary
    assert summary["sent"] == 1 and summary["skipped"] == 1
    code, status = run_json("status", config=path)
    assert status["mailings"][0]["deliveries"]["skipped"] == 1


def test_preview_for_a_subscriber_shows_their_copy(engine: sa.Engine, tmp_path: Path) -> None:
    config, mailing_id = setup_mailing(engine, tmp_path)
    path = write_config(tmp_path, {**base_config(str(engine.url)), "editions": [
        {"name": "daily-en", "language": "en", "schedule": "0 7 * * *", "timezone": "America/Bogota"}]})
    code, report = run_json("preview", "daily-en", "--mailing", str(mailing_id), "--subscriber",
                            "ecuador@example.net", "--out", str(tmp_path / "p"), config=path)
    assert code == 0, report
    assert report["briefs"] == 1 and "Ecuador" in report["subject"]
    text = Path(report["files"]["text"]).read_text(encoding="utf-8")
    assert "Brief quito" in text and "Brief bogota" not in text
    code, report = run_json("preview", "daily-en", "--mailing", str(mailing_id), "--subscriber",
                            "everything@example.net", "--out", str(tmp_path / "p"), config=path)
    assert code == 0 and report["briefs"] == 3
    proc_code, _ = run_json("preview", "daily-en", "--mailing", str(mailing_id), "--subscriber",
                            "peru@example.net", "--out", str(tmp_path / "p"), config=path)
    assert proc_code != 0


def test_content_key_names_the_set_whatever_the_order() -> None:
    assert contents.content_key([3, 1, 2]) == contents.content_key([1, 2, 3, 3])
    assert contents.content_key([1, 2]) != contents.content_key([1, 3])
