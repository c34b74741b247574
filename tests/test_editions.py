"""Mailings from editions, on a real SQLite file and a real PostgreSQL: only news, never twice, never lost."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter import editions, locks
from newsletter.errors import RenderError
from newsletter.slots import slot_id
from newsletter.store import schema
from tests.support.configs import base_config, write_config
from tests.support.editions import T0, add_brief, add_subscriber, deliveries, make_config, mailings

HOUR = timedelta(hours=1)


def brief_keys(engine: sa.Engine, mailing: sa.Row) -> list[str]:
    with engine.connect() as conn:
        keys = dict(conn.execute(sa.select(schema.briefs.c.id, schema.briefs.c.key)).all())
    return [keys[i] for i in mailing.brief_ids]


def test_no_news_no_mailing_and_it_is_logged(engine: sa.Engine, tmp_path: Path, caplog) -> None:
    config = make_config(str(engine.url), tmp_path)
    add_brief(engine, "es-only", seen=T0 - HOUR, language="es")
    with caplog.at_level(logging.INFO, logger="newsletter.editions"):
        assert editions.prepare_mailing(config, engine, "daily-en", slot=slot_id(T0), now=T0) is None
    assert mailings(engine) == []
    (record,) = [r for r in caplog.records if r.getMessage() == "no news"]
    assert record.edition == "daily-en" and record.briefs == 0


def test_first_mailing_looks_back_only_lookback_hours_newest_first(
    engine: sa.Engine, tmp_path: Path, render_url: str | None = None
) -> None:
    config = make_config(str(engine.url), tmp_path, editions=[
        {"name": "daily-en", "language": "en", "lookback_hours": 24}])
    add_brief(engine, "archive", seen=T0 - 30 * HOUR)
    add_brief(engine, "older", seen=T0 - 3 * HOUR, published=T0 - 5 * HOUR)
    add_brief(engine, "newer", seen=T0 - 4 * HOUR, published=T0 - 2 * HOUR)
    add_subscriber(engine, "reader@example.net")
    add_subscriber(engine, "lector@example.net", language="es")
    mailing_id = editions.prepare_mailing(config, engine, "daily-en", slot=slot_id(T0), now=T0)
    (mailing,) = mailings(engine)
    assert mailing.id == mailing_id and mailing.status == "sending"
    assert brief_keys(engine, mailing) == ["newer", "older"]
    assert mailing.cutoff == T0
    assert "Brief newer" in mailing.html and "Brief older" in mailing.text and mailing.subject
    assert [d.email for d in deliveries(engine, mailing_id)] == ["reader@example.net"]


def test_overflow_waits_for_the_next_mailing_and_nothing_goes_twice(engine: sa.Engine, tmp_path: Path) -> None:
    config = make_config(str(engine.url), tmp_path, editions=[{"name": "daily-en", "language": "en", "max_items": 2}])
    for i in range(5):
        add_brief(engine, f"b{i}", seen=T0 - HOUR + i * timedelta(minutes=1))
    first = editions.prepare_mailing(config, engine, "daily-en", slot=slot_id(T0), now=T0)
    second = editions.prepare_mailing(config, engine, "daily-en", slot=slot_id(T0 + 24 * HOUR), now=T0 + 24 * HOUR)
    third = editions.prepare_mailing(config, engine, "daily-en", slot=slot_id(T0 + 48 * HOUR), now=T0 + 48 * HOUR)
    fourth = editions.prepare_mailing(config, engine, "daily-en", slot=slot_id(T0 + 72 * HOUR), now=T0 + 72 * HOUR)
    assert None not in (first, second, third) and fourth is None
    carried = [brief_keys(engine, m) for m in mailings(engine)]
    assert carried == [["b1", "b0"], ["b3", "b2"], ["b4"]]


def test_a_brief_collected_during_a_send_goes_in_the_next_mailing(engine: sa.Engine, tmp_path: Path) -> None:
    config = make_config(str(engine.url), tmp_path)
    add_brief(engine, "before", seen=T0 - HOUR)
    editions.prepare_mailing(config, engine, "daily-en", slot=slot_id(T0), now=T0)
    # The send of the first mailing runs for a while; a collect lands meanwhile.
    add_brief(engine, "during-send", seen=T0 + timedelta(minutes=5))
    # A collect whose transaction began before the cutoff and committed after it.
    add_brief(engine, "late-commit", seen=T0 - timedelta(seconds=2))
    editions.prepare_mailing(config, engine, "daily-en", slot=slot_id(T0 + 24 * HOUR), now=T0 + 24 * HOUR)
    first, second = mailings(engine)
    assert brief_keys(engine, first) == ["before"]
    assert sorted(brief_keys(engine, second)) == ["during-send", "late-commit"]


def test_edition_countries_filter_briefs(engine: sa.Engine, tmp_path: Path) -> None:
    config = make_config(str(engine.url), tmp_path, editions=[
        {"name": "mexico-en", "language": "en", "countries": ["Mexico"]}])
    add_brief(engine, "bogota", seen=T0 - HOUR, countries=("colombia",))
    add_brief(engine, "sinaloa", seen=T0 - HOUR, countries=("mexico", "united-states"))
    editions.prepare_mailing(config, engine, "mexico-en", slot=slot_id(T0), now=T0)
    (mailing,) = mailings(engine)
    assert brief_keys(engine, mailing) == ["sinaloa"]


def test_the_same_slot_twice_gives_the_same_mailing_and_a_quiet_slot_stays_open(
    engine: sa.Engine, tmp_path: Path
) -> None:
    config = make_config(str(engine.url), tmp_path)
    quiet = slot_id(T0)
    assert editions.prepare_mailing(config, engine, "daily-en", slot=quiet, now=T0) is None
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.schedule_slots.c.outcome)).scalar_one() == "no-news"
    # News collected a few minutes after the hour still goes out for that slot.
    add_brief(engine, "arrived-later", seen=T0 + timedelta(minutes=10))
    later = editions.prepare_mailing(config, engine, "daily-en", slot=quiet, now=T0 + timedelta(minutes=20))
    assert later is not None
    assert editions.prepare_mailing(config, engine, "daily-en", slot=quiet, now=T0 + timedelta(minutes=25)) == later
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.schedule_slots.c.outcome)).scalar_one() == "mailing"
    assert len(mailings(engine)) == 1


def test_racing_callers_make_one_mailing_and_carry_each_brief_once(engine: sa.Engine, tmp_path: Path) -> None:
    config = make_config(str(engine.url), tmp_path)
    for i in range(3):
        add_brief(engine, f"b{i}", seen=T0 - HOUR)
    add_subscriber(engine, "reader@example.net")
    barrier = threading.Barrier(4)
    results: list[int | None] = []
    # Two schedulers on the scheduled slot, and two operators pressing "send now" at once.
    slots = [slot_id(T0), slot_id(T0), "manual-2026-03-02T12:00:01Z", "manual-2026-03-02T12:00:02Z"]

    def call(slot: str) -> None:
        barrier.wait()
        results.append(editions.prepare_mailing(config, engine, "daily-en", slot=slot, now=T0 + timedelta(seconds=3)))

    threads = [threading.Thread(target=call, args=(s,)) for s in slots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (mailing,) = mailings(engine)
    assert sorted(brief_keys(engine, mailing)) == ["b0", "b1", "b2"]
    assert [r for r in results if r is not None] in ([mailing.id], [mailing.id] * 2)
    assert len(deliveries(engine, mailing.id)) == 1


def test_a_failure_midway_leaves_no_mailing_and_a_rerun_completes(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(str(engine.url), tmp_path)
    add_brief(engine, "b0", seen=T0 - HOUR)
    add_subscriber(engine, "reader@example.net")

    def broken(*args, **kwargs):
        raise RenderError("template exploded")

    with monkeypatch.context() as patch:
        patch.setattr(editions, "render_mailing", broken)
        with pytest.raises(RenderError):
            editions.prepare_mailing(config, engine, "daily-en", slot=slot_id(T0), now=T0)
    assert mailings(engine) == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.schedule_slots)).all() == []
        assert conn.execute(sa.select(schema.locks)).all() == []
    mailing_id = editions.prepare_mailing(config, engine, "daily-en", slot=slot_id(T0), now=T0)
    assert len(deliveries(engine, mailing_id)) == 1


def test_a_lease_held_elsewhere_makes_the_caller_wait_then_give_up(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(str(engine.url), tmp_path)
    add_brief(engine, "b0", seen=T0 - HOUR)
    monkeypatch.setattr(editions, "LEASE_WAIT_SECONDS", 0.5)
    with locks.lease(engine, "edition:daily-en", "another-scheduler", timedelta(minutes=5)):
        with pytest.raises(Exception, match="held by another-scheduler"):
            editions.prepare_mailing(config, engine, "daily-en", slot=slot_id(T0), now=T0)
    assert mailings(engine) == []


PREPARE = """
import sys
from datetime import datetime
from pathlib import Path
from newsletter import config, editions
from newsletter.store import open_store
loaded = config.load(Path(sys.argv[1]))
now = datetime.fromisoformat(sys.argv[2])
print(editions.prepare_mailing(loaded, open_store(loaded.store_url), "daily-en", slot=sys.argv[2], now=now), flush=True)
"""


def lease_held(engine: sa.Engine) -> bool:
    # A bare DB-API read: on SQLite it must not queue behind the writer for the write lock.
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT name FROM locks")
        return cursor.fetchone() is not None
    finally:
        raw.close()


def test_kill_9_while_preparing_leaves_no_mailing_or_a_complete_one(engine: sa.Engine, tmp_path: Path) -> None:
    data = base_config(engine.url.render_as_string(hide_password=False))
    data["editions"] = [{"name": "daily-en", "language": "en"}]
    config_path = write_config(tmp_path, data)
    audience_size = 20_000
    with engine.begin() as conn:
        conn.execute(schema.subscribers.insert(), [
            dict(email=f"reader{i}@example.net", name="", language="en", editions=[], countries=[], status="active",
                 soft_bounces=0, created_at=T0, updated_at=T0) for i in range(audience_size)])
    add_brief(engine, "b0", seen=T0 - HOUR)
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdefghijkl"}
    command = [sys.executable, "-c", PREPARE, str(config_path), slot_id(T0)]
    for delay in (0.02, 0.1, 0.25):
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Kill it while it holds the edition's lease, i.e. in the middle of creating the mailing.
        while process.poll() is None and not lease_held(engine):
            time.sleep(0.01)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        made = mailings(engine)
        assert len(made) <= 1
        if made:
            assert len(deliveries(engine, made[0].id)) == audience_size and made[0].subject
            break
        # The killed holder's lease lapses after its TTL; play that time forward.
        with engine.begin() as conn:
            conn.execute(schema.locks.update().values(expires_at=T0))
    with engine.begin() as conn:
        conn.execute(schema.locks.update().values(expires_at=T0))
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    (mailing,) = mailings(engine)
    assert rerun.stdout.strip() == str(mailing.id)
    assert len(deliveries(engine, mailing.id)) == audience_size
