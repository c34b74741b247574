"""Hostile brief content can neither break the digest's layout nor inject anything into it."""

from __future__ import annotations

import re
import struct
import time
import zlib
from pathlib import Path

import pytest

from newsletter.config import Config
from newsletter.digest import MailingContent, MessageFactory, render_mailing
from newsletter.recipients import Recipient
from tests.support.browser import browser, overflow, show
from tests.support.digest import CREATED, brief, digest_config
from tests.support.httpserver import FixtureServer, Reply

ANA = Recipient(7, "ana@example.com", "Ana")


@pytest.fixture
def cfg(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "digest-test-key-0123456789abcdefghijkl")
    return digest_config(tmp_path, sqlite_url)


def copy(cfg: Config, items) -> tuple[MailingContent, str, str, bytes]:
    ed = cfg.edition("daily-en")
    r = render_mailing(cfg, ed, items, mailing_id=42, created_at=CREATED)
    content = MailingContent(42, ed.name, ed.language, r.subject, r.preheader, r.html, r.text, r.content_hash, CREATED)
    factory = MessageFactory(cfg, content)
    html, text = factory.parts(ANA)
    return content, html, text, factory.build(ANA)


def body(html: str) -> str:
    """The HTML from the body on: the template's own head styles are not content."""
    return html.split("<body", 1)[1]


def test_script_is_dropped_with_its_content(cfg: Config) -> None:
    _, html, text, _ = copy(cfg, [brief(1, lede='<p>Fact.</p><script>alert("x")</script><noscript>n</noscript>',
                                        analysis="<p>Why.</p><script src='https://evil.example/x.js'></script>")])
    assert "<script" not in html.lower() and "evil.example" not in html
    assert 'alert("x")' not in html and "alert" not in text
    assert "Fact." in html and "Why." in html


def test_style_blocks_and_attributes_are_dropped(cfg: Config) -> None:
    _, html, _, _ = copy(cfg, [brief(1, lede='<style>body{display:none}</style>'
                                            '<p style="position:fixed;top:0;width:9999px">Fact.</p>')])
    assert "display:none}" not in html and "position:fixed" not in html and "9999px" not in html
    assert "Fact." in html
    assert body(html).count("<style") == 0


def test_iframes_objects_and_forms_are_dropped(cfg: Config) -> None:
    _, html, text, _ = copy(cfg, [brief(1, lede='<p>Fact.</p><iframe src="https://evil.example/frame"></iframe>'
                                            '<object data="https://evil.example/o"></object>'
                                            '<form action="https://evil.example/f"><input name="pw"></form>')])
    for marker in ("<iframe", "<object", "<form", "<input", "evil.example"):
        assert marker not in html.lower()
    assert "evil.example" not in text


def test_javascript_links_never_reach_the_digest(cfg: Config) -> None:
    _, html, text, raw = copy(cfg, [brief(1, url="javascript:alert(1)",
                                          lede='<p><a href="JaVaScRiPt:alert(2)">click</a> and '
                                               '<a href="  javascript:alert(3)">more</a></p>')])
    assert "javascript" not in html.lower() and "javascript" not in text.lower()
    assert b"javascript" not in raw.lower()
    # The title still links somewhere real: the publisher's site.
    assert 'href="https://briefs.example.org"' in html


def test_event_handlers_are_stripped(cfg: Config) -> None:
    _, html, _, _ = copy(cfg, [brief(1, lede='<p onclick="steal()">Fact.</p>'
                                            '<img src="https://briefs.example.org/a.png" onerror="steal()" onload="x()">',
                                     title='<b onmouseover="steal()">Title</b>')])
    assert not re.search(r"\son\w+\s*=", body(html))
    assert "steal()" not in html


def test_placeholders_in_content_are_defused(cfg: Config) -> None:
    content, html, text, raw = copy(cfg, [brief(1, title="Click %%nl:unsubscribe_url%% now",
                                                lede="<p>%%nl:preferences_url_html%% and &#37;&#37;nl:greeting_html&#37;&#37;</p>")])
    assert text.count("/unsubscribe/") == 1 and html.count("/unsubscribe/") == 1
    assert html.count("/preferences/") == 1
    assert "%% nl:unsubscribe_url%%" in text


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.browser
def test_a_5000px_image_is_held_to_the_column(cfg: Config, chromium: str, artifacts: Path,
                                               fixture_server: FixtureServer) -> None:
    fixture_server.routes["/huge.png"] = Reply(_png(5000, 60), content_type="image/png")
    src = f"{fixture_server.url}/huge.png"
    _, html, _, _ = copy(cfg, [brief(1, lede=f'<p>Fact.</p><img src="{src}" width="5000" height="60" alt="huge">'
                                            f'<p><img src="{src}" alt="no size"></p>')])
    assert 'width="5000"' not in html
    _, absurd, _, _ = copy(cfg, [brief(1, lede=f'<img src="{src}" width="{"9" * 5000}">')])
    assert 'width="552"' in absurd
    with browser(chromium) as b:
        page = b.new_page(viewport={"width": 375, "height": 900})
        page.route("**/*", lambda route: route.continue_() if route.request.url == src else route.abort())
        page.set_content(html, wait_until="load")
        widths = page.evaluate("[...document.images].map(i => [i.naturalWidth, i.getBoundingClientRect().right])")
        page.screenshot(path=str(artifacts / "huge-image-375px.png"), full_page=True)
        assert widths and all(natural == 5000 and right <= 375 for natural, right in widths), widths
        assert overflow(page) <= 0


def test_a_10000_word_analysis_becomes_a_short_excerpt(cfg: Config) -> None:
    analysis = "<p>" + " ".join(f"Sentence {i} says something about ports." for i in range(2000)) + "</p>"
    started = time.perf_counter()
    _, html, text, _ = copy(cfg, [brief(1, analysis=analysis, lede="<p>" + "word " * 10_000 + "</p>")])
    assert time.perf_counter() - started < 5
    assert "Sentence 99 says" not in text and "Sentence 0 says" in text
    assert len(html.encode()) < 30_000 and len(text) < 6_000
    assert "… " in text or "…\n" in text


@pytest.mark.browser
def test_right_to_left_text_emoji_and_long_words_keep_the_layout(cfg: Config, chromium: str, artifacts: Path) -> None:
    items = [
        brief(1, title="הברחת קוקאין בנמל 🚢 גדלה", lede="<p>שוטרים תפסו שלוש טונות של קוקאין בנמל.</p>",
              analysis="<p>تحليل: الشبكات تتكيف مع الضغط.</p>", authors=("דנה לוי",)),
        brief(2, title="🚨 Alert: seizure in 🇨🇴 Colombia 🎉", lede="<p>" + "Supercalifragilistic" * 20 + "</p>"
              "<p>https://briefs.example.org/" + "a" * 300 + "</p>"),
    ]
    content, html, text, raw = copy(cfg, items)
    assert "🚨 Alert: seizure in 🇨🇴 Colombia 🎉" in html and "🚨 Alert" in text and "🚨 Alert" in content.preheader
    assert "הברחת קוקאין" in text
    with browser(chromium) as b:
        page = show(b, html, 375)
        page.screenshot(path=str(artifacts / "rtl-emoji-375px.png"), full_page=True)
        assert overflow(page) <= 0
        directions = page.evaluate(
            "[...document.querySelectorAll('p.h')].map(p => getComputedStyle(p).direction)")
        assert directions == ["rtl", "ltr"]


def test_line_breaks_in_a_title_stay_out_of_subject_preheader_and_headers(cfg: Config) -> None:
    title = "Seizure\r\nBcc: victim@example.com\n\nX-Injected: yes"
    content, html, text, raw = copy(cfg, [brief(1, title=title)])
    for value in (content.subject, content.preheader):
        assert "\r" not in value and "\n" not in value
    assert "Seizure Bcc: victim@example.com X-Injected: yes" in text
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"X-Injected" not in head and b"Bcc" not in head


@pytest.mark.real_fixtures
def test_feedparsers_script_case_is_stripped_from_the_digest(cfg: Config, real_fixtures: Path) -> None:
    from lxml import etree

    tree = etree.parse(str(real_fixtures / "feedparser_sanitize_entry_content_script.xml"))
    escaped = tree.findtext(".//{http://purl.org/atom/ns#}content")
    _, html, text, raw = copy(cfg, [brief(1, lede=escaped, analysis="")])
    assert "<script" not in html.lower() and "location.href" not in html and "location.href" not in text
    assert "safe description" in " ".join(text.split())
    assert b"example.com/'" not in raw
