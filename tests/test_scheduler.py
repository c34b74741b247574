"""The scheduler's steps with a controlled clock, on a real SQLite file and a real PostgreSQL.

No test waits for time to pass: each hands the job the "now" it would see.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from newsletter.scheduler import EXIT_OK, EXIT_SENDING, Job, RunReport
from newsletter.store import open_store, schema
from tests.support.editions import add_brief, add_subscriber, deliveries, make_config, mailings

UTC = timezone.utc
MINUTE = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-0123456789abcdefghijkl")


def job_at(config, engine: sa.Engine, now: datetime, worker: str = "test") -> Job:
    return Job(config, engine, worker=worker, clock=lambda: now)


def test_a_ticking_scheduler_sends_once_a_day_through_both_dst_changes(sqlite_url: str, tmp_path: Path) -> None:
    """Tick every 10 minutes across both 2026 changes in New York: one mailing per local day."""
    engine = open_store(sqlite_url)
    config = make_config(sqlite_url, tmp_path, editions=[
        {"name": "night-en", "language": "en", "schedule": "30 2 * * *", "timezone": "America/New_York"},
        {"name": "early-en", "language": "en", "schedule": "30 1 * * *", "timezone": "America/New_York"}])
    ny = ZoneInfo("America/New_York")
    created: dict[str, list[str]] = {"night-en": [], "early-en": []}
    for start, days in ((datetime(2026, 3, 7, tzinfo=UTC), 3), (datetime(2026, 10, 31, tzinfo=UTC), 3)):
        for tick in range(days * 24 * 6):
            now = start + tick * 10 * MINUTE
            add_brief(engine, f"brief-{now.isoformat()}", seen=now - MINUTE)
            report = RunReport()
            for name in created:
                if job_at(config, engine, now).run_edition(name, report) is not None:
                    created[name].append(now.astimezone(ny).isoformat())
    assert created["night-en"] == [
        "2026-03-07T02:30:00-05:00", "2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00",
        "2026-10-31T02:30:00-04:00", "2026-11-01T02:30:00-05:00", "2026-11-02T02:30:00-05:00"]
    assert created["early-en"] == [
        "2026-03-07T01:30:00-05:00", "2026-03-08T01:30:00-05:00", "2026-03-09T01:30:00-04:00",
        "2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
    engine.dispose()


def test_a_misfire_after_downtime_runs_once_within_grace_and_never_beyond(
    engine: sa.Engine, tmp_path: Path, caplog
) -> None:
    config = make_config(str(engine.url), tmp_path, editions=[
        {"name": "daily-en", "language": "en", "schedule": "0 7 * * *", "timezone": "America/Bogota",
         "grace_minutes": 60}])
    monday = datetime(2026, 3, 2, 12, tzinfo=UTC)  # 07:00 in Bogota
    add_brief(engine, "monday", seen=monday - 2 * MINUTE * 60)
    # Down over Monday's slot, back at 07:40: the run happens, once.
    report = RunReport()
    assert job_at(config, engine, monday + 40 * MINUTE).run_edition("daily-en", report) is not None
    assert job_at(config, engine, monday + 50 * MINUTE).run_edition("daily-en", report) is None
    assert [e.outcome for e in report.editions] == ["created", "not-due"]
    # Down over Tuesday's slot until 08:30: beyond the grace time, no mailing, and the log says so.
    tuesday = monday + timedelta(days=1)
    add_brief(engine, "tuesday", seen=tuesday - 60 * MINUTE)
    with caplog.at_level(logging.WARNING, logger="newsletter.scheduler"):
        assert job_at(config, engine, tuesday + 90 * MINUTE).run_edition("daily-en", RunReport()) is None
    assert any(r.getMessage() == "slots missed beyond grace" and r.missed == 1 for r in caplog.records)
    # Wednesday's run carries what Tuesday's would have.
    wednesday = tuesday + timedelta(days=1)
    assert job_at(config, engine, wednesday + MINUTE).run_edition("daily-en", RunReport()) is not None
    assert len(mailings(engine)) == 2


def test_two_schedulers_racing_make_one_mailing_and_send_each_copy_once(
    engine: sa.Engine, tmp_path: Path
) -> None:
    config = make_config(str(engine.url), tmp_path)
    slot = datetime(2026, 3, 2, 12, tzinfo=UTC)
    for i in range(3):
        add_brief(engine, f"b{i}", seen=slot - 30 * MINUTE)
    readers = [f"reader{i}@example.net" for i in range(12)]
    for email in readers:
        add_subscriber(engine, email)
    barrier = threading.Barrier(2)
    reports: list[RunReport] = []

    def scheduler(worker: str) -> None:
        job = job_at(config, engine, slot + 2 * MINUTE, worker=worker)
        barrier.wait()
        reports.append(job.run_edition_and_send("daily-en"))

    threads = [threading.Thread(target=scheduler, args=(f"scheduler-{c}",)) for c in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (mailing,) = mailings(engine)
    assert mailing.status == "done"
    rows = deliveries(engine, mailing.id)
    assert [r.email for r in rows] == sorted(readers)
    assert {r.state for r in rows} == {"sent"} and {r.attempts for r in rows} == {1}
    outbox = sorted((tmp_path / "outbox").glob("*.eml"))
    recipients = sorted(next(line for line in p.read_text().splitlines() if line.startswith("To:")) for p in outbox)
    assert len(outbox) == len(readers) and len(set(recipients)) == len(readers)
    assert all(r.exit_code == EXIT_OK for r in reports)


def test_a_collect_landing_mid_send_goes_in_the_next_mailing(engine: sa.Engine, tmp_path: Path) -> None:
    config = make_config(str(engine.url), tmp_path)
    add_subscriber(engine, "reader@example.net")
    monday = datetime(2026, 3, 2, 12, tzinfo=UTC)
    add_brief(engine, "monday", seen=monday - 60 * MINUTE)
    job = job_at(config, engine, monday)
    report = RunReport()
    first = job.run_edition("daily-en", report)
    # A collect lands between the mailing's creation and its send.
    add_brief(engine, "mid-send", seen=monday + timedelta(seconds=30))
    job.send(first, "daily-en", report)
    tuesday = monday + timedelta(days=1)
    second = job_at(config, engine, tuesday).run_edition_and_send("daily-en")
    one, two = mailings(engine)
    with engine.connect() as conn:
        keys = dict(conn.execute(sa.select(schema.briefs.c.id, schema.briefs.c.key)).all())
    assert [keys[i] for i in one.brief_ids] == ["monday"]
    assert [keys[i] for i in two.brief_ids] == ["mid-send"]
    assert second.sends[0].status == "done" and second.sends[0].sent == 1


def test_a_paused_mailing_is_left_for_the_operator_and_reported_for_cron(engine: sa.Engine, tmp_path: Path) -> None:
    from newsletter import operations
    from newsletter.audit import cli_actor

    config = make_config(str(engine.url), tmp_path)
    add_subscriber(engine, "reader@example.net")
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    add_brief(engine, "b0", seen=now - 60 * MINUTE)
    job = job_at(config, engine, now)
    mailing_id = job.run_edition("daily-en", RunReport())
    operations.pause(engine, mailing_id, cli_actor())
    report = RunReport()
    job.send(mailing_id, "daily-en", report)
    assert report.exit_code == EXIT_SENDING, report.as_dict()
    assert deliveries(engine, mailing_id)[0].state == "pending"
    report = RunReport()
    job.send_unfinished(report)
    assert report.sends == []
    operations.resume(engine, mailing_id, cli_actor())
    job.send_unfinished(report)
    assert report.exit_code == EXIT_OK, report.as_dict()
    assert deliveries(engine, mailing_id)[0].state == "sent"


def test_one_process_never_runs_two_senders_for_one_mailing(engine: sa.Engine, tmp_path: Path) -> None:
    config = make_config(str(engine.url), tmp_path)
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    add_brief(engine, "b0", seen=now - 60 * MINUTE)
    for i in range(4):
        add_subscriber(engine, f"reader{i}@example.net")
    job = job_at(config, engine, now)
    mailing_id = job.run_edition("daily-en", RunReport())
    barrier = threading.Barrier(3)
    reports = [RunReport() for _ in range(3)]

    def press(report: RunReport) -> None:
        barrier.wait()
        job.send(mailing_id, "daily-en", report)

    threads = [threading.Thread(target=press, args=(r,)) for r in reports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # One thread sent; the others saw it was already being sent and left it.
    assert sorted(len(r.sends) for r in reports) == [0, 0, 1]
    assert {d.state for d in deliveries(engine, mailing_id)} == {"sent"}
