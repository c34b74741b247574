"""The public pages (home, archive, feeds list) as readers, feed readers and caches get them from the
real `newsletter serve`, on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Iterator

import feedparser
import httpx
import pytest
import sqlalchemy as sa
from lxml import html as lxml_html
from starlette.testclient import TestClient

from newsletter.config import load
from newsletter.store import open_store, schema
from newsletter.web.app import create_app
from tests.support.feeds import assert_valid_atom
from tests.support.public import START, add_mailing, brief, public_config, seed, store_briefs
from tests.support.serve import Served, free_port

ATOM_SCHEMA = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real" / "rfc4287_atom.rnc"
PUBLIC_PAGES = ("/", "/archive/", "/archive/daily-en/", "/feeds/", "/subscribe")


class Site:
    def __init__(self, served: Served, engine: sa.Engine, config: Path, mailings: dict[str, list[int]]) -> None:
        self.served, self.engine, self.config, self.mailings = served, engine, config, mailings
        self.url = served.url

    def get(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(self.url + path, headers=headers, timeout=10)


def start(tmp_path: Path, store_url: str, english_mailings: int) -> Iterator[Site]:
    port = free_port()
    config = public_config(tmp_path, store_url, f"http://127.0.0.1:{port}")
    engine = open_store(store_url)
    mailings = seed(engine, config, english_mailings=english_mailings)
    served = Served(config, port)
    try:
        yield Site(served, engine, config, mailings)
    finally:
        served.stop()
        engine.dispose()


@pytest.fixture
def site(tmp_path: Path, store_url: str) -> Iterator[Site]:
    yield from start(tmp_path, store_url, english_mailings=3)


@pytest.fixture
def big_site(tmp_path: Path, sqlite_url: str) -> Iterator[Site]:
    yield from start(tmp_path, sqlite_url, english_mailings=30)


def doc(response: httpx.Response) -> lxml_html.HtmlElement:
    assert response.status_code == 200, response.text[:500]
    return lxml_html.fromstring(response.text)


def texts(page: lxml_html.HtmlElement, xpath: str) -> list[str]:
    return [" ".join(e.text_content().split()) for e in page.xpath(xpath)]


def test_home_in_english_and_spanish_by_accept_language_with_a_switch(site: Site) -> None:
    english = doc(site.get("/", **{"Accept-Language": "en-GB,en;q=0.9"}))
    assert english.get("lang") == "en"
    assert texts(english, "//h1") == ["The Crime Briefs Test newsletters"]
    editions = texts(english, "//section[@class='edition']")
    assert "Daily Briefing" in editions[0] and "English · every weekday at 07:00 Bogotá time" in editions[0]
    assert "Resumen semanal" in editions[1] and "Español · every Monday at 08:00 Mexico City time" in editions[1]
    # The latest digest of each edition, linking to its web copy.
    newest = site.mailings["daily-en"][-1]
    assert english.xpath(f"//section[@class='edition'][1]//a[@href='/archive/{newest}']")
    assert "Brief 6: police follow the money in Venezuela" in editions[0]
    # The sign-up form with its choices, and the feeds.
    assert english.xpath("//form[@action='/subscribe?lang=en']//input[@name='editions'][@value='daily-en']")
    assert english.xpath("//form//input[@name='countries'][@value='colombia']")
    assert f"{site.url}/feeds/en.atom" in texts(english, "//ul[@class='feeds']//a")
    switch = english.xpath("//header//a[@hreflang='es']")[0]
    assert (switch.get("href"), switch.text_content()) == ("?lang=es", "Español")

    spanish = doc(site.get("/", **{"Accept-Language": "es-CO,es;q=0.9,en;q=0.5"}))
    assert spanish.get("lang") == "es"
    assert texts(spanish, "//h1") == ["Los boletines de Crime Briefs Test"]
    editions = texts(spanish, "//section[@class='edition']")
    assert "Resumen semanal" in editions[0] and "los lunes a las 08:00, hora de Ciudad de México" in editions[0]
    assert "de lunes a viernes a las 07:00, hora de Bogotá" in editions[1]
    assert texts(spanish, "//label[@for='country-mexico']") == ["México"]
    assert doc(site.get("/?lang=es", **{"Accept-Language": "en"})).get("lang") == "es"


def test_the_archive_lists_each_editions_mailings_newest_first_with_titles(site: Site) -> None:
    page = doc(site.get("/archive/"))
    english = page.xpath("//section[@aria-labelledby='archive-daily-en']")[0]
    links = [a.get("href") for a in english.xpath(".//article//a")]
    assert links == [f"/archive/{i}" for i in reversed(site.mailings["daily-en"])]
    first = texts(english, ".//article")[0]
    assert "Brief 5: police follow the money in Mexico" in first and "Brief 6" in first
    assert "Wednesday, 4 March 2026" in first  # sent at 12:00 UTC, 07:00 in Bogotá
    spanish = page.xpath("//section[@aria-labelledby='archive-semanal-es']")[0]
    assert [a.get("href") for a in spanish.xpath(".//article//a")] == [f"/archive/{site.mailings['semanal-es'][0]}"]
    # A call to subscribe, and nothing about any subscriber.
    assert page.xpath("//p[@class='cta']/a[@href='/?lang=en#subscribe']")
    assert "/unsubscribe/" not in site.get("/archive/").text


def test_the_archive_is_paginated_25_a_page(big_site: Site) -> None:
    ids = list(reversed(big_site.mailings["daily-en"]))
    index = doc(big_site.get("/archive/"))
    section = index.xpath("//section[@aria-labelledby='archive-daily-en']")[0]
    assert [a.get("href") for a in section.xpath(".//article//a")] == [f"/archive/{i}" for i in ids[:25]]
    assert section.xpath(".//a[@rel='next']")[0].get("href") == "/archive/daily-en/?page=2&lang=en"
    second = doc(big_site.get("/archive/daily-en/?page=2&lang=en"))
    assert [a.get("href") for a in second.xpath("//article//a")] == [f"/archive/{i}" for i in ids[25:]]
    assert "Page 2 of 2" in second.text_content()
    assert second.xpath("//a[@rel='prev']") and not second.xpath("//a[@rel='next']")
    assert big_site.get("/archive/daily-en/?page=3").status_code == 404
    assert big_site.get("/archive/daily-en/?page=x").status_code == 404
    assert big_site.get("/archive/no-such-edition/").status_code == 404


def test_each_editions_archive_has_a_valid_atom_feed(site: Site, tmp_path: Path) -> None:
    response = site.get("/archive/daily-en.atom")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    path = tmp_path / "daily-en.atom"
    path.write_bytes(response.content)
    assert_valid_atom(ATOM_SCHEMA, [path])
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title == "Daily Briefing: past newsletters from Crime Briefs Test"
    assert [e.link for e in parsed.entries] == [f"{site.url}/archive/{i}" for i in reversed(site.mailings["daily-en"])]
    assert "Brief 5: police follow the money in Mexico" in parsed.entries[0].content[0].value
    self_link = next(link.href for link in parsed.feed.links if link.rel == "self")
    assert self_link == f"{site.url}/archive/daily-en.atom"
    assert site.get("/archive/nope.atom").status_code == 404


def test_the_feeds_page_lists_every_feed_with_counts_updates_and_addresses(site: Site) -> None:
    page = doc(site.get("/feeds/"))
    items = {texts(li, ".//p[@class='feed-title']")[0]: li for li in page.xpath("//li[@class='feed']")}
    english = items["Crime Briefs Test: news briefs"]
    assert "6 briefs, last updated 2 Mar 2026" in english.text_content()
    assert english.xpath(".//a[@class='url']")[0].text_content() == f"{site.url}/feeds/en.atom"
    assert "2 briefs" in items["Crime Briefs Test: Venezuela"].text_content()
    assert "Crime Briefs Test: noticias" in items and "Crime Briefs Test: México" in items
    assert "1 brief, last updated" in items["Crime Briefs Test: Honduras"].text_content()
    archive = items["Daily Briefing: past newsletters from Crime Briefs Test"]
    assert "3 newsletters, the last sent on 4 Mar 2026" in archive.text_content()
    # Every address listed answers with a feed.
    for url in texts(page, "//a[@class='url']"):
        assert httpx.get(url, timeout=30).status_code == 200, url


def test_every_html_page_carries_feed_autodiscovery(site: Site) -> None:
    copy = f"/archive/{site.mailings['daily-en'][0]}"
    for path in (*PUBLIC_PAGES, copy):
        page = doc(site.get(path, **{"Accept-Language": "en"}))
        feeds = page.xpath("//head/link[@rel='alternate'][@type='application/atom+xml']/@href")
        assert f"{site.url}/feeds/en.atom" in feeds, path
    assert f"{site.url}/archive/daily-en.atom" in doc(site.get(copy)).xpath("//head/link[@rel='alternate']/@href")
    spanish = doc(site.get("/", **{"Accept-Language": "es"}))
    assert spanish.xpath("//head/link[@rel='alternate']/@href")[0] == f"{site.url}/feeds/es.atom"


@pytest.mark.parametrize("path", ["/", "/archive/", "/archive/daily-en/", "/feeds/", "/archive/daily-en.atom", "/archive/1"])
def test_pages_answer_304_to_a_reader_whose_copy_is_current(site: Site, path: str) -> None:
    client = httpx.Client(base_url=site.url, timeout=10)
    first = client.get(path)
    assert first.status_code == 200
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert parsedate_to_datetime(modified).tzinfo is not None
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get(path, headers={"If-None-Match": '"something-else"'}).status_code == 200
    assert "max-age" in first.headers["cache-control"] or "no-cache" in first.headers["cache-control"]


def test_a_new_mailing_changes_the_pages_and_their_validators(site: Site) -> None:
    before = site.get("/archive/")
    config = load(site.config)
    ids = store_briefs(site.engine, brief(40, title="Brief 40: a fresh case"))
    new = add_mailing(site.engine, config, "daily-en", ids, START + timedelta(days=9))
    time.sleep(1.2)  # the server looks at the store at most once a second
    after = site.get("/archive/", **{"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.headers["etag"] != before.headers["etag"]
    assert f'href="/archive/{new}"' in after.text and "Brief 40: a fresh case" in after.text
    assert f"/archive/{new}" in site.get("/").text


def test_the_web_copy_is_anonymous_and_invites_to_subscribe(site: Site) -> None:
    mailing_id = site.mailings["daily-en"][0]
    response = site.get(f"/archive/{mailing_id}")
    assert response.status_code == 200
    text = response.text
    assert "/unsubscribe/" not in text and "/preferences/" not in text and "%%nl:" not in text
    page = lxml_html.fromstring(text)
    assert page.xpath("//a[@href='/?lang=en#subscribe']")
    assert page.xpath("//a[@href='/archive/daily-en/?lang=en']")
    assert not page.xpath("//img[@width='1' or @height='1']")  # no tracking pixel
    assert "style-src 'unsafe-inline'" in response.headers["content-security-policy"]
    with site.engine.begin() as conn:
        conn.execute(sa.update(schema.mailings).where(schema.mailings.c.id == mailing_id).values(status="cancelled"))
    time.sleep(1.2)
    assert site.get(f"/archive/{mailing_id}").status_code == 404
    assert f'href="/archive/{mailing_id}"' not in site.get("/archive/").text


def test_a_mailing_not_sent_yet_stays_out_of_the_archive(site: Site) -> None:
    ids = store_briefs(site.engine, brief(50))
    with site.engine.begin() as conn:
        mailing_id = conn.execute(sa.insert(schema.mailings).values(
            edition="daily-en", slot="manual-x", language="en", status="sending", subject="", preheader="",
            brief_ids=ids, cutoff=START, created_at=START)).inserted_primary_key[0]
    time.sleep(1.2)
    assert f'href="/archive/{mailing_id}"' not in site.get("/archive/").text


def test_list_archive_in_every_copy_points_to_its_editions_archive_page(site: Site,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from newsletter.digest.message import MessageFactory
    from newsletter.recipients import Recipient

    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-0123456789abcdefghijkl")
    config = load(site.config)
    with site.engine.connect() as conn:
        row = conn.execute(sa.select(schema.mailings).where(schema.mailings.c.id == site.mailings["daily-en"][0])).one()
    raw = MessageFactory(config, row).build(Recipient(id=1, email="ana@example.com", name="Ana"))
    archive = re.search(rb"^List-Archive: <([^>]+)>", raw, re.M).group(1).decode()
    assert archive == f"{site.url}/archive/daily-en/"
    page = doc(httpx.get(archive, timeout=10))
    assert f"/archive/{row.id}" in [a.get("href") for a in page.xpath("//article//a")]


def test_a_feed_reader_finds_the_feeds_from_the_home_page(site: Site) -> None:
    home = lxml_html.fromstring(httpx.get(site.url + "/", headers={"Accept-Language": "en"}, timeout=10).text)
    links = home.xpath("//head/link[@rel='alternate'][@type='application/atom+xml']")
    assert links
    for link in links:
        parsed = feedparser.parse(link.get("href"))
        assert not parsed.bozo, (link.get("href"), parsed.get("bozo_exception"))
        assert parsed.version == "atom10"
        assert parsed.feed.title == link.get("title")
        assert parsed.entries


def test_a_withdrawn_brief_leaves_the_archive_its_feed_and_the_web_copy(site: Site, tmp_path: Path) -> None:
    from newsletter import briefs

    mailing_id = site.mailings["daily-en"][-1]
    copy_before = site.get(f"/archive/{mailing_id}").text
    assert "Brief 6: police follow the money in Venezuela" in copy_before
    with site.engine.begin() as conn:
        brief_id = briefs.brief_of(conn, "site-en", "en-6")
        assert briefs.withdraw(conn, brief_id, "the publisher retracted it")
    time.sleep(1.2)
    for path in ("/", "/archive/", "/archive/daily-en/", f"/archive/{mailing_id}"):
        text = site.get(path).text
        assert "Brief 6:" not in text, path
        assert "Brief 5: police follow the money in Mexico" in text, path
    feed = site.get("/archive/daily-en.atom")
    assert b"Brief 6:" not in feed.content and b"Brief 5:" in feed.content
    (tmp_path / "after.atom").write_bytes(feed.content)
    assert_valid_atom(ATOM_SCHEMA, [tmp_path / "after.atom"])
    assert "5 briefs" in site.get("/feeds/").text  # English feed: six stored, one withdrawn


def test_an_archive_address_without_its_slash_leads_to_the_edition_or_is_a_404(tmp_path: Path, sqlite_url: str) -> None:
    config = load(public_config(tmp_path, sqlite_url, "https://news.example.org"))
    with TestClient(create_app(config, open_store(sqlite_url)), follow_redirects=False) as client:
        moved = client.get("/archive/daily-en")
        assert moved.status_code == 308 and moved.headers["location"] == "/archive/daily-en/"
        assert client.get("/archive/no-such-edition").status_code == 404
        assert client.get("/archive/-1").status_code == 404
        assert client.get("/archive/12345").status_code == 404  # a mailing number, not an edition
