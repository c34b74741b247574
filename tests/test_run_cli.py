"""`newsletter run --once`, `run` and `mailings` as cron and operators use them: the real CLI in a subprocess."""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from newsletter import config as config_module, editions
from newsletter.store import open_store
from tests.support.cli import run_cli, run_json
from tests.support.configs import base_config, write_config
from tests.support.sites import mount_sites

EVERY_MINUTE = {"name": "daily-en", "language": "en", "schedule": "* * * * *", "timezone": "America/New_York",
                "grace_minutes": 60}


@pytest.fixture
def site(fixture_server):
    mount_sites(fixture_server)
    return fixture_server


def make(config_file, site, **extra) -> Path:
    sections = {
        "sources": [{"name": "crime-briefs-en", "kind": "wordpress", "url": site.url, "language": "en"}],
        "editions": [EVERY_MINUTE],
        **extra,
    }
    path = config_file(**sections)
    run_cli("subscribers", "add", "reader@example.net", "--language", "en", config=path, check=True)
    return path


def outbox(config: Path) -> list[str]:
    return sorted(p.read_text() for p in (config.parent / "outbox").glob("*.eml"))


def test_run_once_collects_builds_feeds_and_sends_what_is_due_then_nothing_twice(config_file, site) -> None:
    config = make(config_file, site)
    code, report = run_json("run", "--once", config=config)
    assert code == 0, report
    (source,) = report["sources"]
    assert source["new"] > 0 and source["error"] is None
    assert (config.parent / "public" / "feeds" / "en.atom").is_file()
    (edition,) = report["editions"]
    assert edition["outcome"] == "created"
    (send,) = report["sends"]
    assert send["status"] == "done" and send["sent"] == 1
    (message,) = outbox(config)
    assert "To: reader@example.net" in message and "River Port Seizure" in message
    # cron calls again a minute later: nothing new, so no second mailing and no second copy.
    code, again = run_json("run", "--once", config=config)
    assert code == 0
    assert again["editions"][0]["outcome"] in ("not-due", "no-news") and again["sends"] == []
    assert len(outbox(config)) == 1
    proc = run_cli("status", "--json", config=config, check=True)
    status = json.loads(proc.stdout)
    assert status["editions"][0]["last_mailing_status"] == "done"
    assert status["mailings"][0]["deliveries"]["sent"] == 1


def test_run_once_exits_3_when_a_source_fails_and_names_it(config_file, site) -> None:
    config = make(config_file, site, sources=[
        {"name": "crime-briefs-en", "kind": "wordpress", "url": site.url, "language": "en"},
        {"name": "gone", "kind": "feed", "url": site.url + "/no-such-feed.xml", "language": "en", "retries": 0}])
    proc = run_cli("run", "--once", config=config)
    assert proc.returncode == 3, proc.stderr
    assert "source gone" in proc.stderr and "404" in proc.stderr
    # The healthy source was still collected and its news sent.
    assert len(outbox(config)) == 1


def test_pause_holds_a_mailing_back_from_cron_until_resumed(config_file, site) -> None:
    config_path = make(config_file, site, editions=[{**EVERY_MINUTE, "schedule": "0 7 1 1 *"}])
    run_cli("collect", config=config_path, check=True)
    config = config_module.load(config_path)
    engine = open_store(config.store_url)
    now = datetime.now(timezone.utc)
    mailing_id = editions.prepare_mailing(config, engine, "daily-en", slot=editions.manual_slot(now), now=now)
    engine.dispose()
    code, paused = run_json("mailings", "pause", str(mailing_id), config=config_path)
    assert code == 0 and paused["status"] == "paused"
    proc = run_cli("run", "--once", config=config_path)
    assert proc.returncode == 0 and outbox(config_path) == []
    code, listed = run_json("mailings", "list", config=config_path)
    # The reason names who paused it: on the CLI, the user running it (the audit log's operator).
    assert listed[0]["status"] == "paused" and listed[0]["paused_reason"] == f"paused by {getpass.getuser()}"
    assert listed[0]["deliveries"]["pending"] == 1
    run_cli("mailings", "resume", str(mailing_id), config=config_path, check=True)
    assert run_cli("run", "--once", config=config_path).returncode == 0
    assert len(outbox(config_path)) == 1
    proc = run_cli("mailings", "pause", str(mailing_id), config=config_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"newsletter: error: mailing {mailing_id} is done: only a sending mailing can be paused"
    proc = run_cli("mailings", "resume", "999", config=config_path)
    assert proc.returncode == 2 and "no mailing with id 999" in proc.stderr


def test_the_scheduler_catches_up_at_start_logs_json_and_stops_on_sigterm(config_file, site) -> None:
    config = make(config_file, site)
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdefghijkl"}
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--config", str(config), "--log-json", "run"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not outbox(config) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        assert len(outbox(config)) == 1
        time.sleep(1)  # let the cycle log its last lines
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert {"scheduler started", "collect done", "mailing created", "send finished", "scheduler stopping"} <= set(names)
    collected = next(e for e in events if e["event"] == "collect done")
    created = next(e for e in events if e["event"] == "mailing created")
    assert created["edition"] == "daily-en" and created["briefs"] == collected["new"] > 0
    assert created["deliveries"] == 1


def test_two_cron_runs_at_once_on_one_store_send_one_mailing_once(store_url: str, tmp_path: Path, site) -> None:
    """Two `run --once` processes started together (two machines, or an overlapping cron run)."""
    data = base_config(store_url)
    data.update(sources=[{"name": "crime-briefs-en", "kind": "wordpress", "url": site.url, "language": "en"}],
                editions=[EVERY_MINUTE])
    config = write_config(tmp_path, data)
    for i in range(5):
        run_cli("subscribers", "add", f"reader{i}@example.net", "--language", "en", config=config, check=True)
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdefghijkl"}
    runs = [subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(config), "run", "--once", "--json"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    reports = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=180)
        assert run.returncode == 0, stderr
        reports.append(json.loads(stdout))
    created = [e for r in reports for e in r["editions"] if e["outcome"] == "created"]
    assert len({e["mailing_id"] for e in created}) == 1
    messages = outbox(config)
    recipients = sorted(line for m in messages for line in m.splitlines() if line.startswith("To:"))
    assert recipients == [f"To: reader{i}@example.net" for i in range(5)]
    code, listed = run_json("mailings", "list", config=config)
    assert len(listed) == 1 and listed[0]["deliveries"]["sent"] == 5 and listed[0]["status"] == "done"
