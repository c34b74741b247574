"""Bad sources fail alone, clearly, and never damage what earlier runs stored; good runs are polite."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter import __version__
from newsletter.collect import collect_all
from newsletter.config import load
from newsletter.store import schema
from tests.support.configs import base_config, write_config
from tests.support.httpserver import FixtureServer, Reply, Request
from tests.support.sites import mount_sites

HEADINGS = ["Crime Briefs Analysis", "Análisis de Crime Briefs"]
BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<rss version="2.0"><channel><title>&lol4;</title><item><title>Boom &lol4;</title>
<link>http://127.0.0.1/news/boom-boom-boom/</link><pubDate>Thu, 01 Oct 2026 10:00:00 +0000</pubDate></item></channel></rss>"""
MALFORMED = "<?xml version='1.0'?><rss version='2.0'><channel><title>Broken</tit"
SCRIPTED = ("<!DOCTYPE html><html><head><title>App</title><script>" + "var x = 1;" * 2000 +
            "</script></head><body><div id='root'></div><script>render()</script></body></html>")


def config_for(tmp_path: Path, store_url: str, *sources: dict[str, Any]):
    data = base_config(store_url)
    data["sources"] = [{"language": "en", "analysis_headings": HEADINGS, "timeout_seconds": 5, "retries": 1, **s}
                       for s in sources]
    return load(write_config(tmp_path, data))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def source_row(engine: sa.Engine, name: str):
    with engine.connect() as conn:
        return conn.execute(sa.select(schema.sources).where(schema.sources.c.name == name)).first()


def brief_rows(engine: sa.Engine, name: str) -> list[tuple]:
    b = schema.briefs
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(b).where(b.c.source == name).order_by(b.c.id))]


@pytest.fixture
def site(fixture_server: FixtureServer):
    return mount_sites(fixture_server)


def test_each_bad_source_fails_alone_with_a_clear_error(tmp_path, sqlite_url, fixture_server, site):
    from newsletter.store import open_store

    s = fixture_server
    s.routes["/hang/feed/"] = Reply("<rss/>", delay=3)
    s.routes["/html/wp-json/wp/v2/posts"] = Reply("<!DOCTYPE html><html><body>Maintenance</body></html>")
    s.routes["/broken/feed/"] = Reply(MALFORMED, content_type="application/rss+xml")
    s.routes["/bomb/feed/"] = Reply(BOMB, content_type="application/rss+xml")
    s.routes["/huge/feed/"] = Reply("<rss>", content_type="application/rss+xml", stream_bytes=50_000_000)
    s.routes["/always500/feed/"] = Reply("oops", status=500)
    s.routes["/app/"] = Reply(SCRIPTED)
    s.routes["/scripted/"] = Reply('<html><body><a href="/scripted/some-article-page/">x</a></body></html>')
    s.routes["/scripted/some-article-page/"] = Reply(SCRIPTED)
    config = config_for(
        tmp_path, sqlite_url,
        {"name": "good", "kind": "feed", "url": s.url + "/feed/"},
        {"name": "down", "kind": "feed", "url": f"http://127.0.0.1:{closed_port()}/feed/"},
        {"name": "hang", "kind": "feed", "url": s.url + "/hang/feed/", "timeout_seconds": 0.5},
        {"name": "html", "kind": "wordpress", "url": s.url + "/html"},
        {"name": "broken", "kind": "feed", "url": s.url + "/broken/feed/"},
        {"name": "bomb", "kind": "feed", "url": s.url + "/bomb/feed/"},
        {"name": "huge", "kind": "feed", "url": s.url + "/huge/feed/", "max_bytes": 1_000_000},
        {"name": "always500", "kind": "feed", "url": s.url + "/always500/feed/"},
        {"name": "app", "kind": "pages", "url": s.url, "listing_url": s.url + "/app/"},
        {"name": "scripted", "kind": "pages", "url": s.url, "listing_url": s.url + "/scripted/"},
    )
    engine = open_store(config.store_url)
    started = time.monotonic()
    results = {r.name: r for r in collect_all(config, engine)}
    elapsed = time.monotonic() - started
    assert results["good"].error is None and results["good"].new == 5
    expected = {
        "down": "cannot connect",
        "hang": "no answer within 0.5s",
        "html": "answered HTML",
        "broken": "not a readable RSS or Atom feed",
        "bomb": "declares entities",
        "huge": "over the 1,000,000-byte cap",
        "always500": "HTTP 500 Internal Server Error after 2 attempts",
        "app": "no article links",
        "scripted": "none of the 1 article pages had a title, a date and text",
    }
    for name, words in expected.items():
        assert results[name].error and words in results[name].error, (name, results[name].error)
        assert source_row(engine, name).last_error == results[name].error
        assert brief_rows(engine, name) == []
    # The hang and the 50 MB body cost seconds, not minutes; retries back off 1 s at most here.
    assert elapsed < 20
    assert results["huge"].requests == 1  # a body over the cap is not worth asking for again
    engine.dispose()


def test_retry_after_is_honoured_then_the_source_is_collected(tmp_path, sqlite_url, fixture_server, site):
    from newsletter.store import open_store

    calls: list[float] = []

    def flaky(request: Request) -> Reply:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Reply("busy", status=503, headers={"Retry-After": "1"}, content_type="text/plain")
        return Reply(fixture_server_feed(fixture_server), content_type="application/rss+xml")

    fixture_server.routes["/flaky/feed/"] = flaky
    config = config_for(tmp_path, sqlite_url, {"name": "flaky", "kind": "feed", "url": fixture_server.url + "/flaky/feed/",
                                                "retries": 3})
    engine = open_store(config.store_url)
    [result] = collect_all(config, engine)
    assert result.error is None and result.new == 5 and result.requests == 2
    assert calls[1] - calls[0] >= 0.95
    engine.dispose()


def fixture_server_feed(server: FixtureServer) -> bytes:
    import requests

    return requests.get(server.url + "/feed/", timeout=5).content


def test_a_failing_run_keeps_what_was_stored(tmp_path, engine, fixture_server, site):
    config = config_for(tmp_path, "sqlite:///unused", {"name": "wp", "kind": "wordpress", "url": fixture_server.url})
    [first] = collect_all(config, engine)
    assert first.error is None and first.new == 5
    before_briefs = brief_rows(engine, "wp")
    before = source_row(engine, "wp")
    fixture_server.routes["/wp-json/wp/v2/posts"] = Reply("<html>Error establishing a database connection</html>",
                                                          status=200)
    [second] = collect_all(config, engine)
    assert "answered HTML" in second.error
    after = source_row(engine, "wp")
    assert brief_rows(engine, "wp") == before_briefs
    assert (after.cursor, after.validators, after.last_success_at) == (before.cursor, before.validators,
                                                                       before.last_success_at)
    assert after.last_error == second.error and after.last_run_at > before.last_run_at


def test_unchanged_sources_cost_only_conditional_requests(tmp_path, engine, fixture_server, site):
    s = fixture_server
    config = config_for(
        tmp_path, "sqlite:///unused",
        {"name": "rss", "kind": "feed", "url": s.url + "/feed/"},
        {"name": "pages", "kind": "pages", "url": s.url, "listing_url": s.url + "/news/"},
    )
    first = collect_all(config, engine)
    # The pages are the feed's articles: sightings of the briefs the feed stored, not new ones.
    assert [(r.new, r.unchanged) for r in first] == [(5, 0), (0, 5)]
    agent = s.requests[0].headers["user-agent"]
    assert agent.startswith(f"newsletter/{__version__} ") and "briefs.example.org" in agent
    s.requests.clear()
    second = collect_all(config, engine)
    # The listing answers 304, so no article page is even asked for.
    assert [(r.new, r.updated, r.unchanged, r.requests) for r in second] == [(0, 0, 0, 1), (0, 0, 0, 1)]
    assert len(s.requests) == 2
    assert all("if-none-match" in r.headers for r in s.requests)


def test_wordpress_unchanged_costs_one_request_and_an_edit_is_read_from_the_cursor(tmp_path, engine, fixture_server,
                                                                                   site):
    config = config_for(tmp_path, "sqlite:///unused", {"name": "wp", "kind": "wordpress", "url": fixture_server.url,
                                                        "categories": ["brief"]})
    collect_all(config, engine)
    assert source_row(engine, "wp").cursor == "2026-10-05T07:00:00+00:00"
    fixture_server.requests.clear()
    # Unchanged: the newest page alone says so (the category ids are remembered).
    [second] = collect_all(config, engine)
    assert (second.error, second.new, second.updated, second.requests) == (None, 0, 0, 1)
    asked = fixture_server.requests_to("/wp-json/wp/v2/posts")[0].path
    assert "categories=1" in asked and "order=desc" in asked
    # An edit: the newest page reaches below the cursor, so it holds the change; nothing more is walked
    # (only what was published since, and the retraction check of the recent briefs, are asked).
    post = next(p for p in site[0].raw if p["id"] == 103)
    post["title"]["rendered"] = "Nine Port Workers Charged"
    post["modified_gmt"] = post["modified"] = "2026-10-06T09:00:00"
    fixture_server.requests.clear()
    [third] = collect_all(config, engine)
    assert (third.error, third.updated, third.withdrawn) == (None, 1, 0)
    assert source_row(engine, "wp").cursor == "2026-10-06T09:00:00+00:00"
    assert not any("modified_after=" in r.path for r in fixture_server.requests_to("/wp-json/wp/v2/posts"))


def test_an_edited_brief_is_updated_in_place(tmp_path, engine, fixture_server, site):
    config = config_for(tmp_path, "sqlite:///unused", {"name": "wp", "kind": "wordpress", "url": fixture_server.url})
    collect_all(config, engine)
    b = schema.briefs
    with engine.connect() as conn:
        before = conn.execute(sa.select(b.c.id, b.c.guid, b.c.first_seen_at).where(b.c.key == "103")).one()
    english = site[0]
    post = next(p for p in english.raw if p["id"] == 103)
    post["title"]["rendered"] = "Nine Port Workers Charged in Santo Domingo"
    post["modified_gmt"] = post["modified"] = "2026-10-06T09:00:00"
    [result] = collect_all(config, engine)
    assert (result.new, result.updated) == (0, 1)
    with engine.connect() as conn:
        after = conn.execute(sa.select(b.c.id, b.c.guid, b.c.first_seen_at, b.c.title, b.c.modified_at)
                             .where(b.c.key == "103")).one()
        total = conn.execute(sa.select(sa.func.count()).select_from(b)).scalar_one()
    assert (after.id, after.guid, after.first_seen_at) == tuple(before)
    assert after.title == "Nine Port Workers Charged in Santo Domingo"
    assert after.modified_at.isoformat() == "2026-10-06T09:00:00+00:00"
    assert total == 5


def test_a_dead_link_on_the_listing_skips_that_page_only(tmp_path, engine, fixture_server, site):
    fixture_server.routes["/gone/"] = Reply(
        f'<html><body><a href="/news/river-port-seizure-exposes-cocaine-route/">a</a>'
        f'<a href="/news/a-story-that-was-deleted/">b</a></body></html>')
    config = config_for(tmp_path, "sqlite:///unused", {"name": "pages", "kind": "pages", "url": fixture_server.url,
                                                        "listing_url": fixture_server.url + "/gone/"})
    [result] = collect_all(config, engine)
    assert (result.error, result.new, result.requests) == (None, 1, 3)


def test_posts_deleted_while_walking_are_withdrawn_by_the_next_run(tmp_path, engine, fixture_server, site):
    english = site[0]

    def delete_while_reading(request: Request) -> Reply | None:
        # After the first page of two, an editor deletes four posts.
        if "modified_before=" in request.path and len(english.raw) == 6:
            del english.raw[2:]
        return None

    fixture_server.mounts.insert(0, delete_while_reading)
    # Published in the last days, within the retraction check's reach.
    now = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
    for i, post in enumerate(sorted(english.raw, key=lambda p: p["modified_gmt"])):
        post["date_gmt"] = post["date"] = (now - timedelta(hours=20 - i)).isoformat()
        post["modified_gmt"] = post["modified"] = (now - timedelta(hours=10 - i)).isoformat()
    config = config_for(tmp_path, "sqlite:///unused", {"name": "wp", "kind": "wordpress", "url": fixture_server.url,
                                                        "per_page": 2})
    [first] = collect_all(config, engine)
    assert first.error is None and first.new >= 2
    remaining = {str(p["id"]) for p in english.raw}
    [second] = collect_all(config, engine)
    assert second.error is None
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.briefs.c.key, schema.briefs.c.withdrawn_reason)).all()
    public = {key for key, reason in rows if reason is None}
    assert public <= remaining
    assert all("deleted (HTTP 404 Not Found)" in reason for key, reason in rows if key not in remaining)
