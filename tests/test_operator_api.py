"""The operator API of the real `newsletter serve`, over HTTP on 127.0.0.1."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from newsletter import config as config_module, editions
from newsletter.store import open_store
from tests.support.cli import run_cli
from tests.support.serve import Served, free_port
from tests.support.sites import mount_sites

TOKEN = "operator-test-token-9f2c-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def config(config_file, fixture_server) -> Path:
    mount_sites(fixture_server)
    path = config_file(
        sources=[{"name": "crime-briefs-en", "kind": "wordpress", "url": fixture_server.url, "language": "en"}],
        editions=[{"name": "daily-en", "language": "en", "schedule": "0 7 1 1 *", "timezone": "America/Bogota"}],
        web={"operator_token_env": "TEST_OPERATOR_TOKEN"},
    )
    run_cli("subscribers", "add", "reader@example.net", "--language", "en", config=path, check=True)
    run_cli("collect", config=path, check=True)
    return path


@pytest.fixture
def served(config: Path):
    server = Served(config, free_port(), env={"TEST_OPERATOR_TOKEN": TOKEN})
    yield server
    server.stop()


def wait_for(url: str, status: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        mailing = httpx.get(url, headers=AUTH, timeout=10).json()
        if mailing["status"] == status or time.monotonic() > deadline:
            return mailing
        time.sleep(0.2)


def test_without_the_right_token_the_api_answers_401_and_does_nothing(served: Served, config: Path) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {TOKEN}x"}):
        answer = httpx.post(served.url + "/api/editions/daily-en/send", headers=headers, timeout=10)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(served.url + "/api/status", timeout=10).status_code == 401
    assert list((config.parent / "outbox").glob("*.eml")) == []
    status = httpx.get(served.url + "/api/status", headers=AUTH, timeout=10).json()
    assert status["mailings"] == [] and status["sources"][0]["last_error"] is None
    assert httpx.get(served.url + "/health", timeout=10).json() == {"status": "ok"}


def test_the_api_is_off_with_a_clear_503_when_no_token_is_configured(config: Path) -> None:
    server = Served(config, free_port())
    try:
        answer = httpx.get(server.url + "/api/status", headers=AUTH, timeout=10)
    finally:
        server.stop()
    assert answer.status_code == 503
    assert "TEST_OPERATOR_TOKEN" in answer.json()["error"]


def test_send_now_then_nothing_new_to_send(served: Served, config: Path) -> None:
    answer = httpx.post(served.url + "/api/editions/daily-en/send", headers=AUTH, timeout=60)
    assert answer.status_code == 202
    body = answer.json()
    assert body["mailing"] == "created"
    mailing = wait_for(served.url + body["url"], "done")
    assert mailing["deliveries"]["sent"] == 1 and mailing["briefs"] > 0
    assert len(list((config.parent / "outbox").glob("*.eml"))) == 1
    again = httpx.post(served.url + "/api/editions/daily-en/send", headers=AUTH, timeout=60)
    assert again.status_code == 200 and again.json()["mailing_id"] is None
    assert httpx.post(served.url + f"/api/mailings/{body['mailing_id']}/pause", headers=AUTH,
                      timeout=10).status_code == 409
    assert httpx.post(served.url + "/api/editions/weekly-fr/send", headers=AUTH, timeout=10).status_code == 404
    assert httpx.get(served.url + "/api/mailings/999", headers=AUTH, timeout=10).status_code == 404


def test_pause_and_resume_over_http(served: Served, config: Path) -> None:
    loaded = config_module.load(config)
    engine = open_store(loaded.store_url)
    now = datetime.now(timezone.utc)
    mailing_id = editions.prepare_mailing(loaded, engine, "daily-en", slot=editions.manual_slot(now), now=now)
    engine.dispose()
    paused = httpx.post(served.url + f"/api/mailings/{mailing_id}/pause", headers=AUTH, timeout=10)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    refused = httpx.post(served.url + "/api/editions/daily-en/send", headers=AUTH, timeout=10)
    assert refused.status_code == 409 and "resume" in refused.json()["error"]
    assert list((config.parent / "outbox").glob("*.eml")) == []
    resumed = httpx.post(served.url + f"/api/mailings/{mailing_id}/resume", headers=AUTH, timeout=10)
    assert resumed.status_code == 200 and resumed.json()["status"] == "sending"
    sent = httpx.post(served.url + "/api/editions/daily-en/send", headers=AUTH, timeout=60)
    assert sent.status_code == 202 and sent.json() | {"mailing": "resumed", "mailing_id": mailing_id} == sent.json()
    assert wait_for(served.url + f"/api/mailings/{mailing_id}", "done")["deliveries"]["sent"] == 1
