"""One article, one brief: whatever sources saw it, and however they spelled its URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from lxml import etree

from newsletter import feeds
from newsletter.collect import collect_all
from newsletter.config import load
from newsletter.identity import canonical_url, post_id_of, site_of
from newsletter.store import schema
from tests.support.configs import base_config, write_config
from tests.support.sites import mount_sites

HEADINGS = ["Crime Briefs Analysis"]
ATOM = "{http://www.w3.org/2005/Atom}"


def test_canonical_urls_ignore_what_does_not_name_the_article() -> None:
    same = [
        "https://briefs.example.org/news/port-seizure/",
        "HTTPS://Briefs.Example.org:443/news/port-seizure",
        "https://briefs.example.org/news/port-seizure/?utm_source=rss&utm_medium=feed#comments",
        "https://briefs.example.org/news/port-seizure?fbclid=abc",
    ]
    assert {canonical_url(u) for u in same} == {"https://briefs.example.org/news/port-seizure"}
    assert canonical_url("http://127.0.0.1:8080/a/?b=2&a=1") == "http://127.0.0.1:8080/a?a=1&b=2"
    assert canonical_url("https://briefs.example.org/news/other/") != canonical_url(same[0])
    assert post_id_of("https://briefs.example.org/?p=352611") == ("briefs.example.org", 352611)
    assert post_id_of("http://127.0.0.1:8080/es/?p=7") == ("127.0.0.1:8080/es", 7)
    assert post_id_of("https://briefs.example.org/news/a/?p=3&x=1") is None
    assert site_of("https://Briefs.example.org/") == "briefs.example.org"


def config_for(tmp_path: Path, store_url: str, *sources: dict[str, Any]):
    data = base_config(store_url)
    data["sources"] = [{"language": "en", "analysis_headings": HEADINGS, "timeout_seconds": 5, **s} for s in sources]
    return load(write_config(tmp_path, data))


def test_an_article_seen_by_the_api_its_feed_and_its_page_is_one_brief(tmp_path, engine, fixture_server):
    english, _ = mount_sites(fixture_server)
    url = fixture_server.url
    config = config_for(tmp_path, "sqlite:///unused",
                        {"name": "rss", "kind": "feed", "url": url + "/feed/"},
                        {"name": "wp", "kind": "wordpress", "url": url},
                        {"name": "atom", "kind": "feed", "url": url + "/feed/atom/"},
                        {"name": "pages", "kind": "pages", "url": url, "listing_url": url + "/news/"})
    results = {r.name: r for r in collect_all(config, engine)}
    assert all(r.error is None for r in results.values())
    # The feed stored the five articles; the API, richer, replaced their text; the rest only sighted them.
    assert (results["rss"].new, results["wp"].new, results["atom"].new, results["pages"].new) == (5, 0, 0, 0)
    assert results["wp"].updated + results["wp"].unchanged == 5
    assert results["atom"].unchanged == 5 and results["pages"].unchanged == 5
    b, s = schema.briefs, schema.sightings
    with engine.connect() as conn:
        stored = conn.execute(sa.select(b.c.id, b.c.key, b.c.content_rank, b.c.post_id)).all()
        sightings = conn.execute(sa.select(s.c.brief_id, sa.func.count()).group_by(s.c.brief_id)).all()
    assert len(stored) == 5 and {r.content_rank for r in stored} == {3}
    assert {r.post_id for r in stored} == {101, 102, 103, 105, 106}
    assert sorted(n for _, n in sightings) == [4] * 5
    # An edit seen by every source is applied once: by the API, the richest.
    post = next(p for p in english.raw if p["id"] == 101)
    post["title"]["rendered"] = "River Port Seizure Exposes a New Route"
    post["modified_gmt"] = post["modified"] = "2026-10-06T09:00:00"
    results = {r.name: r for r in collect_all(config, engine)}
    assert sum(r.updated for r in results.values()) == 1 and results["wp"].updated == 1
    # The feed lists each article once.
    feeds.build_all(config, engine)
    doc = etree.parse(str(config.resolve(config.feed.output_dir) / "en.atom"))
    ids = [e.findtext(f"{ATOM}id") for e in doc.iter(f"{ATOM}entry")]
    assert len(ids) == len(set(ids)) == 5
    assert "River Port Seizure Exposes a New Route" in [e.findtext(f"{ATOM}title") for e in doc.iter(f"{ATOM}entry")]
