"""Archive pages follow publication time, oldest page first, and never change once published."""

from __future__ import annotations

from datetime import timedelta

from lxml import etree

from newsletter import feeds
from newsletter.collect import collect_all
from newsletter.config import load
from tests.support.configs import base_config, write_config
from tests.support.fakewp import FakeWordPress, hours_ago

ATOM = "{http://www.w3.org/2005/Atom}"


def test_archive_pages_are_in_publication_order_and_stable(tmp_path, engine, fixture_server):
    wp = FakeWordPress(fixture_server)
    start = hours_ago(100)
    ids = []
    for i in range(25):
        ids += wp.publish(1, at=start + timedelta(hours=i), title="Story {n}")
    data = base_config("sqlite:///unused")
    data["sources"] = [{"name": "wp", "kind": "wordpress", "url": wp.url, "language": "en", "per_page": 7}]
    data["feed"] = {"output_dir": "public/feeds", "entries": 5, "archive_size": 10}
    config = load(write_config(tmp_path, data))
    # The first collect walks newest first; the archive is still by publication time.
    collect_all(config, engine)
    feeds.build_all(config, engine)
    out = config.resolve(config.feed.output_dir)

    def titles(name: str) -> list[str]:
        doc = etree.parse(str(out / name))
        return sorted(e.findtext(f"{ATOM}title") for e in doc.iter(f"{ATOM}entry"))

    assert titles("en/archive/1.atom") == sorted(f"Story {i}" for i in ids[:10])
    page_title = etree.parse(str(out / "en/archive/1.atom")).getroot().findtext(f"{ATOM}title")
    assert page_title.endswith("(archive, part 1)")
    assert titles("en/archive/2.atom") == sorted(f"Story {i}" for i in ids[10:20])
    page1, page2 = (out / "en/archive/1.atom").read_bytes(), titles("en/archive/2.atom")
    # A late brief published long ago goes after the published pages, which do not change.
    late = wp.publish(1, at=start - timedelta(days=3), title="Late {n}")
    wp.edit(late, at=hours_ago(1))
    wp.publish(6, at=hours_ago(0.5))
    collect_all(config, engine)
    feeds.build_all(config, engine)
    assert (out / "en/archive/1.atom").read_bytes() == page1
    # Page 2 only gains its next-archive link; its entries stay.
    assert titles("en/archive/2.atom") == page2
    assert f"Late {late[0]}" in titles("en/archive/3.atom") + titles("en.atom")
