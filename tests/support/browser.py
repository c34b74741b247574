"""Headless Chromium (Debian's) through playwright, offline: how a page or an email looks."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from playwright.sync_api import Browser, Page, sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextmanager
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            yield instance
        finally:
            instance.close()


def show(b: Browser, html: str, width: int) -> Page:
    """A page of `width` CSS pixels showing `html`, with every network request refused."""
    page = b.new_page(viewport={"width": width, "height": 900})
    page.route("**/*", lambda route: route.abort())
    page.set_content(html, wait_until="domcontentloaded")
    return page


def overflow(page: Page) -> int:
    """How many pixels the document is wider than the viewport (0 when nothing overflows)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def visible_in_width(page: Page, selector: str) -> bool:
    """The element is rendered, non-empty and lies within the viewport's width."""
    return page.evaluate(
        """(sel) => [...document.querySelectorAll(sel)].length > 0 && [...document.querySelectorAll(sel)].every(e => {
            const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
            return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= window.innerWidth + 0.5
                && s.visibility !== 'hidden' && s.display !== 'none' && parseFloat(s.opacity) > 0;
        })""",
        selector,
    )
