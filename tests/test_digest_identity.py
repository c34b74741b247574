"""Every copy we ever produce is a copy of its own: test sends, previews and drafts never share a
Message-ID with each other or with a delivery, and never borrow a mailing's id or archive link.

Driven through the real CLI with the outbox transport, before and after an edition's first mailing."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta
from pathlib import Path

import pytest

from newsletter.store import open_store, utcnow
from tests.support.cli import run_json
from tests.support.editions import add_brief
from tests.support.sending import add_subscribers, send_config

ENV = {"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdefghijkl"}
ARCHIVE = re.compile(r"https://news\.example\.org/archive/\d+")


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-0123456789abcdefghijkl")


def read(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[return-value]


def body(message: email.message.EmailMessage) -> str:
    return "".join(part.get_content() for part in message.iter_parts())


def new_files(folder: Path, seen: set[Path]) -> list[Path]:
    files = sorted(p for p in folder.glob("*.eml") if p not in seen)
    seen.update(files)
    return files


def test_test_copies_previews_and_deliveries_never_share_an_identity(tmp_path: Path, sqlite_url: str) -> None:
    config, path = send_config(tmp_path, sqlite_url)
    # Links as written, so the copies' archive links can be read off them (tracking has its own tests).
    path.write_text(path.read_text() + "\n[tracking]\nclicks = false\n")
    engine = open_store(sqlite_url)
    add_subscribers(engine, ["ana@example.net", "ben@example.net"])
    add_brief(engine, "port-raid", seen=utcnow() - timedelta(minutes=5))
    outbox, previews = tmp_path / "outbox", tmp_path / "previews"
    seen: set[Path] = set()
    message_ids: list[str] = []

    # Before the first mailing: test copies and previews are of a draft, which has no id yet.
    for _ in range(2):
        code, sent = run_json("send", "daily-en", "--to", "editor@example.org", config=path, env=ENV)
        assert code == 0 and sent["draft"] and sent["mailing_id"] is None
    draft_copies = new_files(outbox, seen)
    assert len(draft_copies) == 2, "the second test copy replaced the first"
    for args in ((), ("--subscriber", "ana@example.net")):
        code, report = run_json("preview", "daily-en", *args, "--out", str(previews), config=path, env=ENV)
        assert code == 0 and report["mailing_id"] is None
        assert Path(report["files"]["eml"]).name == "daily-en-draft.eml"
        draft_copies.append(Path(report["files"]["eml"]).rename(previews / f"preview-{len(draft_copies)}.eml"))
    for copy in draft_copies:
        message = read(copy)
        message_ids.append(message["Message-ID"])
        # Nothing points at a mailing that does not exist yet (or later is another one).
        assert message["List-Archive"] is None and not ARCHIVE.search(body(message))
        assert message["Feedback-ID"].startswith("draft:")

    # The mailing itself: each subscriber's copy links its archive page.
    code, summary = run_json("send", "daily-en", config=path, env=ENV)
    assert code == 0 and summary["sent"] == 2
    mailing_id = summary["mailing_id"]
    deliveries = new_files(outbox, seen)
    assert len(deliveries) == 2
    for copy in deliveries:
        message = read(copy)
        message_ids.append(message["Message-ID"])
        assert message["List-Archive"] == "<https://news.example.org/archive/daily-en/>"
        assert f"https://news.example.org/archive/{mailing_id}" in body(message)

    # After it: test copies and previews of that mailing, Ana's too, each with an id of its own.
    for _ in range(2):
        code, sent = run_json("send", "daily-en", "--to", "ana@example.net", config=path, env=ENV)
        assert code == 0 and sent["mailing_id"] == mailing_id
    tests = new_files(outbox, seen)
    assert len(tests) == 2
    for copy in tests:
        message_ids.append(read(copy)["Message-ID"])
    for _ in range(2):
        code, report = run_json("preview", "daily-en", "--mailing", str(mailing_id), "--subscriber", "ana@example.net",
                                "--out", str(previews), config=path, env=ENV)
        assert code == 0
        message_ids.append(read(Path(report["files"]["eml"]))["Message-ID"])

    assert len(message_ids) == 10
    assert len(set(message_ids)) == len(message_ids), message_ids
    assert all(re.fullmatch(r"<[\w.]+@example\.org>", m) for m in message_ids)
    engine.dispose()
