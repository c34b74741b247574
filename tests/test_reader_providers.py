"""Per-reader copies through Postmark, SendGrid and Mailgun (a local server speaking their APIs):
each reader's copy arrives, a batch mixing copies goes one call per copy, and the provider's own
click and open tracking is turned off in every call."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter import editions
from newsletter.config import load
from newsletter.send.dispatch import send_mailing
from newsletter.slots import slot_id
from newsletter.store import open_store
from tests.support.configs import base_config, write_config
from tests.support.editions import T0, add_brief, add_subscriber
from tests.support.httpserver import FixtureServer
from tests.support.providers import DOMAIN, TOKEN, ProviderStub

HOUR = timedelta(hours=1)


@pytest.mark.parametrize("kind", ["postmark", "sendgrid", "mailgun"])
def test_each_reader_gets_their_copy_and_provider_tracking_is_off(
        tmp_path: Path, sqlite_url: str, fixture_server: FixtureServer, kind: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_API_TOKEN", TOKEN)
    stub = ProviderStub(fixture_server)
    data = base_config(sqlite_url)
    data["editions"] = [{"name": "daily-en", "language": "en", "lookback_hours": 100000}]
    data["transport"] = {"kind": kind, "api_url": stub.url, "api_token_env": "TEST_API_TOKEN", "domain": DOMAIN,
                         "connections": 1}
    config = load(write_config(tmp_path, data))
    engine = open_store(sqlite_url)
    add_brief(engine, "quito", seen=T0 - 2 * HOUR, countries=("ecuador",))
    add_brief(engine, "bogota", seen=T0 - HOUR, countries=("colombia",))
    readers = {f"all{i}@example.net": () for i in range(3)} | {f"ec{i}@example.net": ("ecuador",) for i in range(3)}
    for address, countries in readers.items():
        add_subscriber(engine, address, countries=countries)
    mailing_id = editions.prepare_mailing(config, engine, "daily-en", slot=slot_id(T0), now=T0)
    summary = send_mailing(config, engine, mailing_id, worker="test")
    engine.dispose()
    assert summary.sent == 6 and summary.status == "done"
    by_to = {c.to.rpartition("<")[2].rstrip(">") or c.to: c for c in stub.copies}
    assert set(by_to) == set(readers)
    for address, countries in readers.items():
        copy = by_to[address]
        assert "Brief quito" in copy.text
        assert ("Brief bogota" in copy.text) == (not countries), address
        assert "%%nl:" not in copy.html and "/unsubscribe/" in copy.html
    # One batch of six mixing two copies: one call per copy (a call carries one template).
    assert len(stub.calls) == 2
    for request in fixture_server.requests:
        body = request.body.decode("utf-8", "replace")
        if kind == "sendgrid":
            assert json.loads(body)["tracking_settings"] == {
                "click_tracking": {"enable": False, "enable_text": False}, "open_tracking": {"enable": False}}
        elif kind == "postmark":
            assert all(m["TrackLinks"] == "None" and m["TrackOpens"] is False for m in json.loads(body))
        else:
            assert 'name="o:tracking-clicks"\r\n\r\nno\r\n' in body and 'name="o:tracking-opens"\r\n\r\nno\r\n' in body


def test_store_upgrade_from_0001_keeps_deliveries_and_adds_copies(tmp_path: Path, store_url: str) -> None:
    from alembic import command

    from newsletter.store.db import _alembic_config, create_engine

    engine = create_engine(store_url)
    command.upgrade(_alembic_config(engine), "0001")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO mailings (id, edition, slot, language, status, subject, preheader, brief_ids, cutoff, html, "
            "text, content_hash, created_at) VALUES (1, 'daily-en', 's', 'en', 'done', 'Old', '', '[1]', "
            "'2026-03-01 12:00:00', '<p>old</p>', 'old', 'h', '2026-03-01 12:00:00')"))
        conn.execute(sa.text(
            "INSERT INTO deliveries (mailing_id, email, state, attempts) VALUES (1, 'ana@example.net', 'sent', 1)"))
    command.upgrade(_alembic_config(engine), "head")
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT email, state, content_key FROM deliveries")).one()
        assert tuple(row) == ("ana@example.net", "sent", None)  # the whole mailing, as before
        assert conn.execute(sa.text("SELECT count(*) FROM mailing_contents")).scalar() == 0
        conn.execute(sa.text("SELECT mailing_id, link_no, url, kind, brief_id FROM mailing_links"))
        conn.execute(sa.text("SELECT mailing_id, link_no, day, verdict, count FROM tracking_counts"))
    engine.dispose()
