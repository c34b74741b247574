"""Privacy-first click tracking against the real `newsletter serve`: signed /r/ links, no open
redirect, people counted apart from HEAD, bots and scanners, and nothing about the reader kept."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import sqlalchemy as sa

from newsletter import editions
from newsletter.config import load
from newsletter.send.dispatch import send_mailing
from newsletter.slots import slot_id
from newsletter.store import open_store, schema
from newsletter.tracking import tokens
from newsletter.tracking.filter import ClickFilter
from tests.support.cli import run_json
from tests.support.configs import base_config, write_config
from tests.support.editions import T0, add_subscriber
from tests.support.httpserver import FixtureServer, Reply
from tests.support.serve import Served, free_port

KEY = b"test-secret-key-0123456789abcdefghijkl"
HOUR = timedelta(hours=1)
PERSON = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def person(n: int) -> dict[str, str]:
    """A distinct reader's browser: the scanner filter tells clients apart by address and agent."""
    return {"User-Agent": f"{PERSON} reader-{n}"}


def add_brief(engine: sa.Engine, key: str, site: str, countries: tuple[str, ...], seen: datetime) -> int:
    with engine.begin() as conn:
        return conn.execute(schema.briefs.insert().values(
            source="site-en", key=key, guid=f"tag:x,2026:{key}", url=f"{site}/news/{key}/", title=f"Brief {key}",
            authors=["Ana Ruiz"], published_at=seen, modified_at=seen, language="en", countries=list(countries),
            tags=[], lede=f'<p>What happened in {key}, <a href="{site}/related/{key}/">see also</a>.</p>',
            analysis="<p>Why it matters.</p>", content_hash=key, first_seen_at=seen, updated_at=seen,
        )).inserted_primary_key[0]


class Setup:
    def __init__(self, tmp_path: Path, store_url: str, site: FixtureServer, opens: bool = False) -> None:
        self.port = free_port()
        self.public = f"http://127.0.0.1:{self.port}"
        data = base_config(store_url)
        data["publication"].update(site_url=site.url, public_url=self.public, donate_url=f"{site.url}/donate/")
        data["editions"] = [{"name": "daily-en", "language": "en", "lookback_hours": 100000}]
        data["tracking"] = {"opens": opens}
        self.path = write_config(tmp_path, data)
        self.config = load(self.path)
        self.engine = open_store(store_url)
        self.site = site
        self.outbox = tmp_path / "outbox"

    def mailing(self, keys: dict[str, tuple[str, ...]], readers: dict[str, tuple[str, ...]], now: datetime) -> int:
        for i, (key, countries) in enumerate(keys.items()):
            add_brief(self.engine, key, self.site.url, countries, now - HOUR + timedelta(minutes=i))
        for address, countries in readers.items():
            add_subscriber(self.engine, address, countries=countries)
        mailing_id = editions.prepare_mailing(self.config, self.engine, "daily-en", slot=slot_id(now), now=now)
        assert mailing_id
        send_mailing(self.config, self.engine, mailing_id, worker="test")
        return mailing_id

    def copy(self, address: str, mailing_id: int) -> email.message.EmailMessage:
        for path in self.outbox.glob("*.eml"):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["To"].addresses[0].addr_spec == address and message["Message-ID"].startswith(f"<{mailing_id}."):
                return message
        raise AssertionError(f"no copy for {address}")

    def links(self, mailing_id: int) -> list[sa.Row]:
        ml = schema.mailing_links
        with self.engine.connect() as conn:
            return conn.execute(sa.select(ml).where(ml.c.mailing_id == mailing_id).order_by(ml.c.link_no)).all()

    def counts(self, mailing_id: int) -> dict[str, int]:
        t = schema.tracking_counts
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.verdict, sa.func.sum(t.c.count)).where(t.c.mailing_id == mailing_id)
                                .group_by(t.c.verdict)).all()
        return {verdict: int(n) for verdict, n in rows}


@pytest.fixture
def site() -> Iterator[FixtureServer]:
    server = FixtureServer()
    server.mounts.append(lambda req: Reply(f"<html><body><h1>Original {req.path}</h1></body></html>"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def setup(tmp_path: Path, store_url: str, site: FixtureServer) -> Iterator[Setup]:
    s = Setup(tmp_path, store_url, site)
    yield s
    s.engine.dispose()


@pytest.fixture
def served(setup: Setup) -> Iterator[Served]:
    server = Served(setup.path, setup.port)
    yield server
    server.stop()


def hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', html)


def test_every_link_goes_through_r_except_the_readers_own(setup: Setup) -> None:
    mailing_id = setup.mailing({"quito": ("ecuador",)}, {"ana@example.net": ()}, T0)
    message = setup.copy("ana@example.net", mailing_id)
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    personal = [h for h in hrefs(html) if "/unsubscribe/" in h or "/preferences/" in h]
    assert len(personal) == 2
    others = [h for h in hrefs(html) if h not in personal and h.startswith("http")]
    assert others and all(h.startswith(f"{setup.public}/r/") for h in others)
    urls = re.findall(r"https?://\S+", text)
    assert all(u.startswith(f"{setup.public}/r/") or "/unsubscribe/" in u or "/preferences/" in u for u in urls)
    assert "/unsubscribe/" in message["List-Unsubscribe"]
    kinds = {(r.kind, r.brief_id is not None) for r in setup.links(mailing_id)}
    assert {("original", True), ("donate", False), ("archive", False), ("other", True), ("other", False)} <= kinds
    # The token names the mailing and the link, not the reader: every copy carries the same ones.
    assert all(tokens.read(KEY, h.rsplit("/", 1)[1])[0] == mailing_id for h in others)


def test_redirect_goes_to_exactly_the_link_and_refuses_everything_else(setup: Setup, served: Served) -> None:
    mailing_id = setup.mailing({"quito": ("ecuador",)}, {"ana@example.net": ()}, T0)
    links = setup.links(mailing_id)
    original = next(r for r in links if r.kind == "original")
    good = tokens.make(KEY, mailing_id, original.link_no)
    with httpx.Client(base_url=served.url, headers=person(1)) as client:
        answer = client.get(f"/r/{good}")
        assert answer.status_code == 302 and answer.headers["location"] == original.url
        assert "set-cookie" not in answer.headers
        tampered = good[:5] + ("A" if good[5] != "A" else "B") + good[6:]
        foreign = tokens.make(b"another-installation", mailing_id, original.link_no)
        not_in_mailing = tokens.make(KEY, mailing_id, len(links) + 1)
        other_mailing = tokens.make(KEY, mailing_id + 1, original.link_no)
        pixel_as_link = tokens.make(KEY, mailing_id, tokens.OPEN)
        for bad in (tampered, foreign, not_in_mailing, other_mailing, pixel_as_link, "forged", good + "x",
                    "https:%2F%2Fevil.example%2F"):
            refused = client.get(f"/r/{bad}")
            assert refused.status_code == 404, bad
            assert "location" not in refused.headers
    assert setup.counts(mailing_id) == {"counted": 1}


def test_head_bots_and_a_scanner_burst_are_filtered_and_counted_apart(setup: Setup, served: Served) -> None:
    mailing_id = setup.mailing({"quito": ("ecuador",), "lima": ("peru",)}, {"ana@example.net": ()}, T0)
    links = setup.links(mailing_id)
    url = lambda link: f"/r/{tokens.make(KEY, mailing_id, link.link_no)}"
    with httpx.Client(base_url=served.url) as client:
        assert client.head(url(links[0]), headers=person(1)).status_code == 302
        assert client.get(url(links[0]), headers={"User-Agent": "Barracuda Sentinel (EE)"}).status_code == 302
        assert client.get(url(links[0]), headers={"User-Agent": ""}).status_code == 302
        # A person clicks one link: counted.
        assert client.get(url(links[1]), headers=person(2)).status_code == 302
        assert setup.counts(mailing_id) == {"head": 1, "bot": 2, "counted": 1}
        # A security gateway fetches every link of the message at once: the whole burst is filed as
        # a scanner, including the first fetch that looked like a click.
        for link in links[:4]:
            assert client.get(url(link), headers=person(3)).status_code == 302
    assert setup.counts(mailing_id) == {"head": 1, "bot": 2, "counted": 1, "scanner": 4}


def test_the_burst_filter_moves_the_first_clicks_of_a_burst_and_forgets_after_the_window() -> None:
    judge = ClickFilter(burst_seconds=10, burst_links=3)
    day = T0.date()
    args = dict(method="GET", user_agent=PERSON, client="127.0.0.1", mailing_id=1, day=day)
    assert judge.judge(link_no=1, now=0.0, **args) == ("counted", [])
    assert judge.judge(link_no=1, now=1.0, **args)[0] == "counted"  # the same link again is a person
    assert judge.judge(link_no=2, now=2.0, **args)[0] == "counted"
    verdict, refile = judge.judge(link_no=3, now=3.0, **args)
    assert verdict == "scanner" and sorted(s.link_no for s in refile) == [1, 1, 2]
    assert judge.judge(link_no=4, now=4.0, **args) == ("scanner", [])  # nothing left to move
    assert judge.judge(link_no=5, now=30.0, **args) == ("counted", [])  # the window has passed


def test_a_real_browser_follows_a_tracked_link_to_the_original(setup: Setup, served: Served, chromium: str) -> None:
    from tests.support.browser import ARGS
    from playwright.sync_api import sync_playwright

    mailing_id = setup.mailing({"quito": ("ecuador",)}, {"ana@example.net": ()}, T0)
    html = setup.copy("ana@example.net", mailing_id).get_body(("html",)).get_content()
    original = next(r for r in setup.links(mailing_id) if r.kind == "original")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = browser.new_context(user_agent=PERSON).new_page()
            page.set_content(html)
            title = page.locator("a", has_text="Brief quito").first
            assert title.get_attribute("href").startswith(f"{setup.public}/r/")
            with page.expect_navigation():
                title.click()
            assert page.url == original.url
            assert page.locator("h1").inner_text() == "Original /news/quito/"
            assert browser.contexts[0].cookies() == []
        finally:
            browser.close()
    assert setup.counts(mailing_id) == {"counted": 1}


def test_no_tracking_when_clicks_are_off(tmp_path: Path, site: FixtureServer) -> None:
    data = base_config(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    data["publication"].update(site_url=site.url)
    data["editions"] = [{"name": "daily-en", "language": "en", "lookback_hours": 100000}]
    data["tracking"] = {"clicks": False}
    path = write_config(tmp_path, data)
    engine = open_store(data["store"]["url"])
    add_brief(engine, "quito", site.url, ("ecuador",), T0 - HOUR)
    add_subscriber(engine, "ana@example.net")
    code, summary = run_json("send", "daily-en", config=path)
    assert code == 0 and summary["sent"] == 1
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    html = message.get_body(("html",)).get_content()
    assert "/r/" not in html and f'href="{site.url}/news/quito/"' in html
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.mailing_links)).all() == []
    engine.dispose()


def test_opens_pixel_only_when_on_and_counted_per_mailing(tmp_path: Path, store_url: str, site: FixtureServer) -> None:
    s = Setup(tmp_path, store_url, site, opens=True)
    mailing_id = s.mailing({"quito": ("ecuador",)}, {"ana@example.net": ()}, T0)
    html = s.copy("ana@example.net", mailing_id).get_body(("html",)).get_content()
    (src,) = re.findall(r'<img src="([^"]+/o/[^"]+)"', html)
    served = Served(s.path, s.port)
    try:
        with httpx.Client(headers=person(1)) as client:
            answer = client.get(src)
            assert answer.status_code == 200 and answer.headers["content-type"] == "image/gif"
            assert client.get(src, headers={"User-Agent": "GoogleBot"}).status_code == 200
            assert client.get(f"{s.public}/o/{tokens.make(KEY, mailing_id + 5, tokens.OPEN)}").status_code == 404
            archive = client.get(f"{s.public}/archive/{mailing_id}").text
            assert "/o/" not in archive and "/r/" not in archive
    finally:
        served.stop()
    assert s.counts(mailing_id) == {"counted": 1, "bot": 1}
    code, figures = run_json("report", str(mailing_id), config=s.path)
    assert code == 0 and figures["opens"] == 1 and figures["clicks"] == 0
    s.engine.dispose()
