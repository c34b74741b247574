"""What the publisher takes back leaves: retractions, private posts, tombstones, status counts."""

from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from lxml import etree

from newsletter.config import load
from newsletter.errors import ConfigError
from newsletter.store import open_store, schema
from tests.support.cli import run_cli, run_json
from tests.support.configs import base_config, write_config
from tests.support.fakewp import FakeWordPress, hours_ago
from tests.support.httpserver import Reply, Request
from tests.support.sites import mount_sites

ATOM = "{http://www.w3.org/2005/Atom}"
TOMBSTONE = "{http://purl.org/atompub/tombstones/1.0}deleted-entry"


def write(tmp_path: Path, sqlite_url: str, *sources: dict[str, Any]) -> Path:
    data = base_config(sqlite_url)
    data["sources"] = [{"language": "en", "timeout_seconds": 5, "retries": 1, **s} for s in sources]
    data["editions"] = [{"name": "daily-en", "language": "en"}]
    return write_config(tmp_path, data)


def feed(path: Path) -> etree._Element:
    return etree.parse(str(path.parent / "public" / "feeds" / "en.atom")).getroot()


def test_retracted_and_private_posts_are_withdrawn_with_tombstones(tmp_path, sqlite_url, fixture_server):
    wp = FakeWordPress(fixture_server)
    kept, trashed, drafted, deleted, protected, private = wp.publish(6, at=hours_ago(5))
    # Never public, never stored: a password-protected post.
    [locked] = wp.publish(1, at=hours_ago(5), title="Locked {n}")
    wp.posts[locked]["content"] = {"rendered": "", "protected": True}
    config = write(tmp_path, sqlite_url, {"name": "wp", "kind": "wordpress", "url": wp.url})
    code, data = run_json("collect", config=config)
    assert (code, data["sources"][0]["new"]) == (0, 6)
    entries = {e.findtext(f"{ATOM}title"): e.findtext(f"{ATOM}id") for e in feed(config).iter(f"{ATOM}entry")}
    assert len(entries) == 6 and not any(t.startswith("Locked") for t in entries)

    wp.posts[trashed]["status"] = "trash"
    wp.posts[drafted]["status"] = "draft"
    del wp.posts[deleted]
    wp.edit([protected], at=hours_ago(1), content={"rendered": "", "protected": True})
    wp.posts[private]["status"] = "private"
    code, data = run_json("collect", config=config)
    assert (code, data["sources"][0]["withdrawn"]) == (0, 5)

    engine = open_store(sqlite_url)
    b = schema.briefs
    with engine.connect() as conn:
        reasons = dict(conn.execute(sa.select(b.c.key, b.c.withdrawn_reason).where(b.c.withdrawn_at.is_not(None))).all())
        total = conn.execute(sa.select(sa.func.count()).select_from(b)).scalar_one()
    engine.dispose()
    assert total == 6  # withdrawn briefs stay stored, with when and why
    assert reasons[str(deleted)] == "the post was deleted (HTTP 404 Not Found)"
    assert reasons[str(trashed)].startswith("the post is no longer public: trashed, unpublished or private")
    assert reasons[str(drafted)] == reasons[str(private)] == reasons[str(trashed)]
    assert reasons[str(protected)] == "the post is password-protected"

    root = feed(config)
    assert [e.findtext(f"{ATOM}title") for e in root.iter(f"{ATOM}entry")] == [f"Story {kept}"]
    tombstones = {t.get("ref") for t in root.iter(TOMBSTONE)}
    assert tombstones == {entries[f"Story {i}"] for i in (trashed, drafted, deleted, protected, private)}
    assert all(t.get("when") for t in root.iter(TOMBSTONE))

    code, status = run_json("status", config=config)
    [source] = status["sources"]
    assert (source["briefs"], source["withdrawn"]) == (6, 5)
    # A new mailing carries only the public brief.
    proc = run_cli("preview", "daily-en", "--out", str(tmp_path / "preview"), config=config)
    assert proc.returncode == 0, proc.stderr
    text = next((tmp_path / "preview").glob("*.txt")).read_text("utf-8")
    assert f"Story {kept}" in text and not any(f"Story {i}" in text for i in (trashed, deleted, protected))


def test_a_feed_item_taken_out_whose_page_is_gone_is_withdrawn(tmp_path, sqlite_url, fixture_server):
    english, _ = mount_sites(fixture_server)
    now = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
    for i, post in enumerate(sorted(english.raw, key=lambda p: p["date_gmt"])):
        post["date_gmt"] = post["date"] = post["modified_gmt"] = post["modified"] = (now - timedelta(hours=9 - i)).isoformat()
    config = write(tmp_path, sqlite_url, {"name": "rss", "kind": "feed", "url": fixture_server.url + "/feed/"})
    assert run_json("collect", config=config)[1]["sources"][0]["new"] == 5
    newest = max(english.raw, key=lambda p: p["date_gmt"])
    gone = sorted((p for p in english.raw if p is not newest and "personal" not in p["link"]),
                  key=lambda p: p["date_gmt"])[-1]
    english.raw.remove(gone)  # out of the feed, and its page answers 404
    code, data = run_json("collect", config=config)
    assert (code, data["sources"][0]["withdrawn"]) == (0, 1)
    assert any(t.get("ref") for t in feed(config).iter(TOMBSTONE))


def test_maintenance_defers_the_source_and_the_run_does_not_stall(tmp_path, sqlite_url, fixture_server):
    mount_sites(fixture_server)
    fixture_server.routes["/maint/wp-json/wp/v2/posts"] = Reply(
        "<h1>Briefly unavailable for scheduled maintenance.</h1>", status=503, headers={"Retry-After": "600"})
    config = write(tmp_path, sqlite_url, {"name": "maint", "kind": "wordpress", "url": fixture_server.url + "/maint"},
                   {"name": "good", "kind": "feed", "url": fixture_server.url + "/feed/"})
    started = time.monotonic()
    code, data = run_json("collect", config=config)
    assert time.monotonic() - started < 20
    maint, good = data["sources"]
    assert code == 1 and good["new"] == 5 and maint["requests"] == 1
    assert maint["error"].startswith("HTTP 503 Service Unavailable asking us to retry in 600 s")
    code, status = run_json("status", config=config)
    assert status["sources"][0]["deferred_until"] == maint["deferred_until"]
    assert "deferred until" in run_cli("status", config=config, env={"COLUMNS": "300"}).stdout
    # Within the deferral: nothing is asked, and the run still says the source was not collected.
    fixture_server.requests.clear()
    code, data = run_json("collect", config=config)
    assert code == 1 and data["sources"][0]["requests"] == 0
    assert data["sources"][0]["error"].startswith("deferred until ")
    assert not fixture_server.requests_to("/maint/")
    # Once the time has come, the source is asked again.
    engine = open_store(sqlite_url)
    with engine.begin() as conn:
        conn.execute(schema.sources.update().where(schema.sources.c.name == "maint")
                     .values(deferred_until=datetime.now(timezone.utc) - timedelta(seconds=1)))
    engine.dispose()
    code, data = run_json("collect", config=config)
    assert data["sources"][0]["requests"] == 1


def test_a_rest_api_behind_login_explains_application_passwords(tmp_path, sqlite_url, fixture_server):
    wp = FakeWordPress(fixture_server)
    wp.publish(2, at=hours_ago(2))
    expected = "Basic " + base64.b64encode(b"editor:abcd efgh ijkl").decode()

    def login(request: Request) -> Reply | None:
        if request.path.startswith("/wp/") and request.headers.get("authorization") != expected:
            return Reply('{"code":"rest_not_logged_in","data":{"status":401}}', status=401,
                         content_type="application/json")
        return None

    fixture_server.mounts.insert(0, login)
    anonymous = write(tmp_path, sqlite_url, {"name": "wp", "kind": "wordpress", "url": wp.url})
    proc = run_cli("collect", config=anonymous)
    line = next(l for l in proc.stderr.splitlines() if l.startswith("newsletter: source wp failed: "))
    reason = line.removeprefix("newsletter: source wp failed: ")
    assert reason.startswith("the REST API needs authentication (HTTP 401 Unauthorized): ")
    for words in ("application password", "auth_user", "auth_password_env", "HTTPS"):
        assert words in reason
    assert reason.endswith(wp.url.removeprefix("http://")[:20]) or wp.url.removeprefix("http://") in reason
    logged_in = write(tmp_path, sqlite_url, {"name": "wp", "kind": "wordpress", "url": wp.url,
                                             "auth_user": "editor", "auth_password_env": "WP_APP_PASSWORD"})
    code, data = run_json("collect", config=logged_in, env={"WP_APP_PASSWORD": "abcd efgh ijkl"})
    assert (code, data["sources"][0]["new"]) == (0, 2)
    proc = run_cli("collect", config=logged_in, env={"WP_APP_PASSWORD": ""})
    assert proc.returncode != 0 and "WP_APP_PASSWORD" in proc.stderr


@pytest.mark.parametrize("source, words", [
    ({"kind": "feed", "auth_user": "a", "auth_password_env": "X"}, "only on a source of kind 'wordpress'"),
    ({"kind": "wordpress", "auth_user": "a"}, "auth_password_env: missing"),
    ({"kind": "wordpress", "url": "http://briefs.example.org", "auth_user": "a", "auth_password_env": "X"},
     "expected an https:// URL"),
])
def test_auth_settings_are_checked_at_load(tmp_path, source, words):
    data = base_config("sqlite:///x.sqlite3")
    data["sources"] = [{"name": "s", "url": "https://briefs.example.org", "language": "en", **source}]
    with pytest.raises(ConfigError, match=words):
        load(write_config(tmp_path, data))


def test_a_listed_article_page_that_is_gone_withdraws_its_brief(tmp_path, sqlite_url, fixture_server):
    english, _ = mount_sites(fixture_server)
    fixture_server.routes["/listing/"] = Reply(
        '<html><body><a href="/news/river-port-seizure-exposes-cocaine-route/">a</a>'
        '<a href="/news/port-workers-charged-in-santo-domingo/#top">b</a></body></html>')
    config = write(tmp_path, sqlite_url, {"name": "pages", "kind": "pages", "url": fixture_server.url,
                                          "listing_url": fixture_server.url + "/listing/",
                                          "analysis_headings": ["Crime Briefs Analysis"]})
    assert run_json("collect", config=config)[1]["sources"][0]["new"] == 2
    english.raw[:] = [p for p in english.raw if "port-workers" not in p["link"]]
    code, data = run_json("collect", config=config)
    assert (code, data["sources"][0]["withdrawn"]) == (0, 1)
    [tombstone] = feed(config).iter(TOMBSTONE)
    assert tombstone.find(f"{ATOM}link").get("href").endswith("/news/port-workers-charged-in-santo-domingo/")
