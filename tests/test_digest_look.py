"""How the digest looks in a real browser at phone and desktop widths (screenshots kept in test-artifacts/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.config import Config
from newsletter.digest import MailingContent, MessageFactory, render_mailing
from newsletter.recipients import Recipient
from tests.support.browser import browser, overflow, show, visible_in_width
from tests.support.digest import CREATED, brief, briefs, digest_config

pytestmark = pytest.mark.browser


@pytest.fixture
def cfg(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "digest-test-key-0123456789abcdefghijkl")
    return digest_config(tmp_path, sqlite_url)


def personal_html(cfg: Config, items, edition: str = "daily-en") -> str:
    ed = cfg.edition(edition)
    r = render_mailing(cfg, ed, items, mailing_id=42, created_at=CREATED)
    content = MailingContent(42, ed.name, ed.language, r.subject, r.preheader, r.html, r.text, r.content_hash, CREATED)
    return MessageFactory(cfg, content).parts(Recipient(7, "ana@example.com", "Ana Pérez"))[0]


@pytest.mark.parametrize("edition", ["daily-en", "weekly-es"])
def test_digest_fits_a_phone_and_a_desktop_and_shows_every_title_and_the_donate_button(
    cfg: Config, chromium: str, artifacts: Path, edition: str
) -> None:
    language = cfg.edition(edition).language
    items = briefs(6, language=language) + [brief(7, analysis="", language=language, countries=())]
    html = personal_html(cfg, items, edition)
    (artifacts / f"{edition}.html").write_text(html, encoding="utf-8")
    with browser(chromium) as b:
        for width in (375, 600):
            page = show(b, html, width)
            page.screenshot(path=str(artifacts / f"{edition}-{width}px.png"), full_page=True)
            assert overflow(page) <= 0, f"{width}px: the digest is wider than the screen"
            for item in items:
                title = page.get_by_role("link", name=item.title, exact=True)
                assert title.is_visible()
                assert visible_in_width(page, f'a[href="{item.url}"]')
            donate = page.get_by_role("link", name="Donate" if language == "en" else "Donar", exact=True)
            assert donate.is_visible()
            box = donate.bounding_box()
            assert box and box["width"] >= 80 and box["x"] + box["width"] <= width
            # The publisher's name heads the digest, above the first brief.
            header = page.get_by_role("link", name="Crime Briefs Test", exact=True).bounding_box()
            first = page.get_by_role("link", name=items[0].title, exact=True).bounding_box()
            assert header and first and header["y"] < first["y"]
            page.close()


def _luminance(rgb: str) -> float:
    channels = [int(c) / 255 for c in re.findall(r"\d+", rgb)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two CSS rgb() colours."""
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@pytest.mark.parametrize("edition", ["daily-en", "weekly-es"])
def test_with_images_off_the_logos_alt_text_names_the_publisher_readably_on_the_masthead(
        tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, chromium: str, artifacts: Path,
        edition: str) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "digest-test-key-0123456789abcdefghijkl")
    cfg = digest_config(tmp_path, sqlite_url, logo_url="https://briefs.example.org/logo.png")
    html = personal_html(cfg, briefs(2, language=cfg.edition(edition).language), edition)
    with browser(chromium) as b:
        for width in (375, 600):
            page = show(b, html, width)  # every request refused: the logo never loads
            page.screenshot(path=str(artifacts / f"{edition}-logo-blocked-{width}px.png"))
            alt = page.evaluate("""() => {
                const img = document.querySelector('img[alt="Crime Briefs Test"]');
                let node = img, background = 'rgba(0, 0, 0, 0)';
                while (node && /rgba\\(0, 0, 0, 0\\)|transparent/.test(background)) {
                    background = getComputedStyle(node).backgroundColor; node = node.parentElement;
                }
                const s = getComputedStyle(img), r = img.getBoundingClientRect();
                return {broken: img.complete && img.naturalWidth === 0, color: s.color, background,
                        size: parseFloat(s.fontSize), weight: s.fontWeight, width: r.width, height: r.height};
            }""")
            assert alt["broken"]
            assert contrast(alt["color"], alt["background"]) >= 7, alt
            assert alt["size"] >= 24 and alt["height"] >= alt["size"] and 0 < alt["width"] <= width, alt
            page.close()
