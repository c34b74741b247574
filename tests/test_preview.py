"""`newsletter preview` writes what a subscriber would get; `/archive/{id}` shows the same HTML to anyone."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from newsletter import briefs as briefs_module
from newsletter import editions, tokens
from newsletter.store import open_store, utcnow
from newsletter.subscribers import registry
from newsletter.subscribers.profile import Profile
from newsletter.web.app import create_app
from tests.support.cli import run_cli, run_json
from tests.support.digest import brief, digest_config

KEY = "test-secret-key-0123456789abcdefghijkl"  # what tests/support/cli.py gives the subprocess


@pytest.fixture
def setup(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    config = digest_config(tmp_path, store_url)
    engine = open_store(store_url)
    now = utcnow()
    with engine.begin() as conn:
        for i in (1, 2, 3):
            briefs_module.upsert(conn, replace(brief(i, id=None), published_at=now, modified_at=now),
                                 site_url=config.publication.site_url)
        ana, _ = registry.add(conn, "Ana@Example.com", Profile("Ana Pérez", "en", (), ()), registry.Consent(),
                              source="test")
    yield config, engine, ana
    engine.dispose()


def read_eml(path: str) -> email.message.EmailMessage:
    return email.message_from_bytes(Path(path).read_bytes(), policy=email.policy.default)  # type: ignore[return-value]


def test_preview_of_the_next_mailing_for_a_sample_reader(setup, tmp_path: Path) -> None:
    config, _, _ = setup
    code, report = run_json("preview", "daily-en", "--out", str(tmp_path / "out"), config=config.path)
    assert code == 0, report
    # The next mailing does not exist yet: the preview borrows no mailing's id or archive link.
    assert report["briefs"] == 3 and report["mailing_id"] is None and not report["existing"]
    assert report["files"]["html"].endswith("daily-en-draft.html")
    html = Path(report["files"]["html"]).read_text(encoding="utf-8")
    text = Path(report["files"]["text"]).read_text(encoding="utf-8")
    for i in (1, 2, 3):
        assert f"Record cocaine seizure number {i}" in html and f"brief-number-{i}/" in text
    assert "Hello Sample Reader," in text and "%%nl:" not in html + text
    msg = read_eml(report["files"]["eml"])
    assert msg["To"] == "Sample Reader <reader@example.org>"
    assert msg["Subject"] == report["subject"]
    assert report["subject"].startswith("3 briefs: ") and {"Mexico", "Venezuela", "Ecuador"} <= set(
        re.split(r", | and ", report["subject"][10:]))
    assert msg.get_payload()[0].get_content().replace("\r\n", "\n") == text


def test_preview_for_a_named_subscriber(setup, tmp_path: Path) -> None:
    config, _, ana = setup
    code, report = run_json("preview", "daily-en", "--subscriber", "ana@example.com", "--out", str(tmp_path),
                            config=config.path)
    assert code == 0, report
    msg = read_eml(report["files"]["eml"])
    assert msg["To"] == "Ana Pérez <ana@example.com>"
    token = re.search(r"/unsubscribe/([\w-]+)>", str(msg["List-Unsubscribe"])).group(1)
    assert tokens.read(KEY.encode(), "unsubscribe", token) == ana
    assert "Hello Ana Pérez," in Path(report["files"]["text"]).read_text(encoding="utf-8")


def test_preview_of_an_existing_mailing_matches_its_archive_page(setup, tmp_path: Path) -> None:
    config, engine, _ = setup
    now = utcnow()
    mailing_id = editions.prepare_mailing(config, engine, "daily-en", slot=editions.manual_slot(now), now=now)
    assert mailing_id
    code, report = run_json("preview", "daily-en", "--mailing", str(mailing_id), "--out", str(tmp_path),
                            config=config.path)
    assert code == 0, report
    assert report["existing"] and report["files"]["html"].endswith(f"daily-en-{mailing_id}.html")
    preview = Path(report["files"]["html"]).read_text(encoding="utf-8")
    with TestClient(create_app(config, engine)) as client:
        page = client.get(f"/archive/{mailing_id}")
        assert client.get("/archive/999").status_code == 404
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]
    archive = page.text
    assert "/unsubscribe/" in preview and "/unsubscribe/" not in archive and "/preferences/" not in archive
    assert "<p>Hello,</p>" in archive and "%%nl:" not in archive
    # Apart from the greeting, the subscriber's own links, where links lead (the copy's go
    # through /r/ to be counted, the archive's straight on) and what the page adds around the copy
    # (feed autodiscovery in its head, an invitation to subscribe on top), it is the same HTML.
    page_parts = r'<link rel="alternate"[^>]*>|<div role="complementary"[^>]*>.*?</div>'
    strip = lambda html: re.sub(r'href="[^"]*"', 'href=""', re.sub(
        page_parts + r"|<p>Hello[^<]*</p>|<a href=\"https://news\.example\.org/(unsubscribe|preferences)/[^>]*>[^<]*</a> · ",
        "", html))
    assert strip(preview) == strip(archive)
    assert f'href="https://news.example.org/archive/{mailing_id}"' in archive
    assert "/r/" not in archive and 'href="https://news.example.org/r/' in preview


def test_preview_errors_are_one_clear_line(setup, tmp_path: Path) -> None:
    config, engine, _ = setup
    proc = run_cli("preview", "daily-en", "--subscriber", "nobody@example.com", "--out", str(tmp_path), config=config.path)
    assert proc.returncode != 0 and "no subscriber 'nobody@example.com'" in proc.stderr
    proc = run_cli("preview", "weekly-es", "--out", str(tmp_path), config=config.path)
    assert proc.returncode != 0 and "has no new briefs" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("preview", "daily-en", "--mailing", "77", "--out", str(tmp_path), config=config.path)
    assert proc.returncode != 0 and "no mailing with id 77" in proc.stderr
