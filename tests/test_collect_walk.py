"""The WordPress walk against an API that shuffles ties like MariaDB: nothing lost, little asked."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from newsletter.collect import collect_all
from newsletter.config import load
from newsletter.store import schema
from tests.support.cli import run_cli, run_json
from tests.support.configs import base_config, write_config
from tests.support.fakewp import FakeWordPress, hours_ago
from tests.support.httpserver import FixtureServer


def config_for(tmp_path: Path, store_url: str, wp: FakeWordPress, **source: Any):
    data = base_config(store_url)
    data["sources"] = [{"name": "wp", "kind": "wordpress", "url": wp.url, "language": "en", "timeout_seconds": 5,
                        "retries": 0, **source}]
    return load(write_config(tmp_path, data))


def titles(engine: sa.Engine, *, public: bool = True) -> set[str]:
    b = schema.briefs
    query = sa.select(b.c.title)
    if public:
        query = query.where(b.c.withdrawn_at.is_(None))
    with engine.connect() as conn:
        return set(conn.execute(query).scalars())


@pytest.fixture
def wp(fixture_server: FixtureServer) -> FakeWordPress:
    return FakeWordPress(fixture_server)


def test_a_bulk_publish_sharing_one_modified_time_is_stored_whole(tmp_path, engine, wp):
    ids = wp.publish(25, at=hours_ago(3))
    config = config_for(tmp_path, "sqlite:///unused", wp, per_page=10)
    [first] = collect_all(config, engine)
    assert (first.error, first.new) == (None, 25)
    assert titles(engine) == {f"Story {i}" for i in ids}
    # A bulk edit later, into one modified time again, reaches every post once.
    wp.edit(ids[:23], at=hours_ago(1), title={"rendered": "Edited"})
    more = wp.publish(12, at=hours_ago(1))
    [second] = collect_all(config, engine)
    assert (second.error, second.new, second.updated) == (None, 12, 23)
    assert titles(engine) == {"Edited", *(f"Story {i}" for i in ids[23:] + more)}


def test_posts_published_and_edited_while_walking_are_not_lost(tmp_path, engine, wp):
    ids = wp.publish(30, at=hours_ago(5))
    config = config_for(tmp_path, "sqlite:///unused", wp, per_page=10)
    collect_all(config, engine)
    wp.edit(ids[:15], at=hours_ago(2), title={"rendered": "Corrected"})
    # Between the walk's requests: a new post, an edit of a post already passed, and a trash.
    late: list[int] = []
    wp.hooks[wp.list_requests + 3] = lambda: (late.extend(wp.publish(1, at=hours_ago(0.5), title="Late {n}")),
                           wp.edit([ids[0]], at=hours_ago(0.4), title={"rendered": "Corrected twice"}),
                           wp.posts[ids[20]].update(status="trash"))
    collect_all(config, engine)
    [third] = collect_all(config, engine)
    assert third.error is None
    assert titles(engine) == {"Corrected", "Corrected twice", f"Late {late[0]}",
                              *(f"Story {i}" for i in ids[15:] if i != ids[20])}


def test_an_unchanged_site_costs_one_request(tmp_path, engine, wp, fixture_server):
    wp.publish(40, at=hours_ago(2))
    config = config_for(tmp_path, "sqlite:///unused", wp, per_page=10)
    collect_all(config, engine)
    fixture_server.requests.clear()
    [again] = collect_all(config, engine)
    assert (again.error, again.new, again.updated, again.requests) == (None, 0, 0, 1)
    assert len(fixture_server.requests) == 1


def test_a_bad_post_is_skipped_with_its_reason_and_the_rest_stored(tmp_path, sqlite_url, wp):
    good = wp.publish(3, at=hours_ago(2))
    control, untitled, undated = wp.publish(3, at=hours_ago(2))
    wp.posts[control]["content"]["rendered"] = "Bad \x0b\x1b text \ufffe"
    wp.posts[untitled]["title"]["rendered"] = ""
    wp.posts[undated]["date_gmt"] = None
    config = config_for(tmp_path, sqlite_url, wp)
    code, data = run_json("collect", config=config.path)
    [result] = data["sources"]
    assert (code, result["error"], result["new"]) == (0, None, 3)
    reasons = {item["id"]: item["reason"] for item in result["skipped"]}
    assert set(reasons) == {str(control), str(untitled), str(undated)}
    assert reasons[str(control)].startswith("unreadable text: ")
    assert (reasons[str(untitled)], reasons[str(undated)]) == ("no title", "no publication date")
    assert len(good) == 3
    # The table says so too, one line per skipped post.
    (tmp_path / "text").mkdir()
    text = config_for(tmp_path / "text", f"sqlite:///{tmp_path / 'text' / 'store.sqlite3'}", wp)
    proc = run_cli("collect", config=text.path, env={"COLUMNS": "200"})
    assert proc.returncode == 0 and f"wp: skipped item {untitled}: no title" in proc.stderr


def test_a_scheduled_post_published_later_is_collected(tmp_path, engine, wp):
    wp.publish(5, at=hours_ago(6))
    # Scheduled yesterday evening for this morning: its modified time stays where scheduling left it.
    [scheduled] = wp.publish(1, at=hours_ago(8), title="Scheduled {n}")
    wp.posts[scheduled].update(status="future", date_gmt=hours_ago(1).replace(tzinfo=None).isoformat())
    config = config_for(tmp_path, "sqlite:///unused", wp)
    [first] = collect_all(config, engine)
    assert first.new == 5
    wp.posts[scheduled]["status"] = "publish"  # what WordPress's cron does, and nothing more
    [second] = collect_all(config, engine)
    assert (second.error, second.new) == (None, 1)
    assert f"Scheduled {scheduled}" in titles(engine)


def test_a_backlog_of_max_pages_pages_is_stored_whole(tmp_path, engine, wp, fixture_server):
    start = hours_ago(10)
    for i in range(30):
        wp.publish(1, at=start + timedelta(minutes=i))
    config = config_for(tmp_path, "sqlite:///unused", wp, per_page=10, max_pages=3, max_items=30)
    [first] = collect_all(config, engine)
    # Three pages of ten, none of them repeating a post of the page before.
    assert (first.error, first.new, first.requests) == (None, 30, 3)
