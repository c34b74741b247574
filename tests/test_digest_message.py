"""Each subscriber's RFC 5322 copy: MIME structure, the bulk-sender headers, DKIM, no header injection."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import dkim
import pytest

from newsletter import tokens
from newsletter.config import Config
from newsletter.digest import MailingContent, MessageFactory, render_mailing
from newsletter.digest.placeholders import PATTERN, fill
from newsletter.errors import RenderError
from newsletter.recipients import Recipient
from tests.support.digest import CREATED, brief, briefs, digest_config

KEY = "digest-test-key-0123456789abcdefghijkl"
ANA = Recipient(7, "ana@example.com", "Ana Pérez")


@pytest.fixture
def cfg(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    return digest_config(tmp_path, sqlite_url)


def mailing(cfg: Config, items=None, mailing_id: int = 42, edition: str = "daily-en") -> MailingContent:
    ed = cfg.edition(edition)
    r = render_mailing(cfg, ed, items or briefs(3), mailing_id=mailing_id, created_at=CREATED)
    return MailingContent(mailing_id, ed.name, ed.language, r.subject, r.preheader, r.html, r.text,
                          r.content_hash, CREATED)


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def test_multipart_alternative_text_first_html_last_utf8_personalised(cfg: Config) -> None:
    raw = MessageFactory(cfg, mailing(cfg)).build(ANA)
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.get_payload()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert "Hello Ana Pérez," in text.get_content()
    assert "<p>Hello Ana Pérez,</p>" in html.get_content()
    assert "%%nl:" not in text.get_content() + html.get_content()
    token = re.search(r"https://news\.example\.org/unsubscribe/([\w-]+)", text.get_content()).group(1)
    assert tokens.read(KEY.encode(), "unsubscribe", token) == 7
    token = re.search(r"https://news\.example\.org/preferences/([\w-]+)", html.get_content()).group(1)
    assert tokens.read(KEY.encode(), "preferences", token) == 7
    # Every line fits SMTP's limits; quoted-printable keeps body lines short.
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_bulk_sender_headers(cfg: Config) -> None:
    msg = parse(MessageFactory(cfg, mailing(cfg)).build(ANA))
    assert msg["From"] == "Crime Briefs <news@example.org>"
    assert msg["To"] == "Ana Pérez <ana@example.com>"
    assert msg["Reply-To"] == "Crime Briefs Desk <desk@example.org>"
    assert msg["Subject"] == "3 briefs: Mexico, Venezuela and Ecuador"
    assert msg["Date"].datetime is not None
    assert msg["List-Id"] == "Crime Briefs Daily <daily-en.news.example.org>"
    assert msg["List-Archive"] == "<https://news.example.org/archive/42>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Feedback-ID"] == "42:daily-en:digest:crimebriefs"
    https, mailto = [u.strip() for u in str(msg["List-Unsubscribe"]).split(",")]
    token = re.fullmatch(r"<https://news\.example\.org/unsubscribe/([\w-]+)>", https).group(1)
    assert tokens.read(KEY.encode(), "unsubscribe", token) == 7
    assert mailto == f"<mailto:unsubscribe@example.org?subject=unsubscribe%20{token}>"


def test_spanish_subject_is_encoded_and_reads_back(cfg: Config) -> None:
    content = mailing(cfg, [brief(1, countries=("mexico",), language="es")], edition="weekly-es")
    raw = MessageFactory(cfg, content).build(ANA)
    assert raw.isascii()
    assert parse(raw)["Subject"] == "1 nota: México"


def test_message_id_is_stable_per_mailing_and_subscriber(cfg: Config) -> None:
    content = mailing(cfg)
    factory = MessageFactory(cfg, content)
    first = parse(factory.build(ANA))["Message-ID"]
    assert first == parse(MessageFactory(cfg, content).build(ANA))["Message-ID"]
    assert re.fullmatch(r"<42\.[0-9a-f]{24}@example\.org>", first)
    assert first != parse(factory.build(Recipient(8, "ben@example.com")))["Message-ID"]
    other = MessageFactory(cfg, replace(content, id=43))
    assert first != parse(other.build(ANA))["Message-ID"]


def test_test_copies_and_drafts_get_a_new_message_id_at_every_build(cfg: Config) -> None:
    content = mailing(cfg)
    delivered = parse(MessageFactory(cfg, content).build(ANA))["Message-ID"]
    tests = MessageFactory(cfg, content, test=True)
    ids = [parse(tests.build(ANA))["Message-ID"] for _ in range(3)]
    ids += [tests.recipient_headers(Recipient(None, "editor@example.org"))["Message-ID"] for _ in range(2)]
    assert len(set(ids)) == 5 and delivered not in ids
    assert all(re.fullmatch(r"<test\.42\.[0-9a-f]{24}@example\.org>", i) for i in ids)
    # A draft is not mailing 42, nor any other: no id, no archive copy.
    draft = MessageFactory(cfg, replace(content, id=None))
    first, second = parse(draft.build(ANA)), parse(draft.build(ANA))
    assert first["Message-ID"] != second["Message-ID"] and first["Message-ID"].startswith("<test.draft.")
    assert first["List-Archive"] is None and first["Feedback-ID"] == "draft:daily-en:digest:crimebriefs"


def test_date_has_a_numeric_zone(cfg: Config) -> None:
    raw = MessageFactory(cfg, mailing(cfg), now=CREATED).build(ANA)
    assert b"\r\nDate: Thu, 05 Mar 2026 12:00:00 +0000\r\n" in raw


def test_a_test_address_gets_working_links_that_name_nobody(cfg: Config) -> None:
    msg = parse(MessageFactory(cfg, mailing(cfg)).build(Recipient(None, "editor@example.org")))
    token = re.search(r"/unsubscribe/([\w-]+)>", str(msg["List-Unsubscribe"])).group(1)
    assert tokens.read(KEY.encode(), "unsubscribe", token) == 0
    assert msg["To"] == "editor@example.org"
    assert "Hello," in msg.get_payload()[0].get_content()


def test_batch_provider_template_and_variables_give_the_same_copy(cfg: Config) -> None:
    factory = MessageFactory(cfg, mailing(cfg))
    template = factory.template()
    assert PATTERN.search(template.html) and PATTERN.search(template.text)
    assert template.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "To" not in template.headers
    values = factory.variables(ANA)
    assert (fill(template.html, values), fill(template.text, values)) == factory.parts(ANA)
    assert values["greeting_html"] == "Hello Ana Pérez,"
    personal = factory.recipient_headers(ANA)
    assert personal["List-Unsubscribe"].startswith(f"<{values['unsubscribe_url']}>")
    assert set(personal) == {"To", "Message-ID", "List-Unsubscribe"}
    assert factory.envelope_sender == "news@example.org"


def test_no_header_carries_a_line_break_from_content(cfg: Config) -> None:
    hostile = replace(mailing(cfg, [brief(1, title="Seized\r\nBcc: victim@example.com")]),
                      subject="Briefs\r\nBcc: victim@example.com\nX-Evil: 1")
    evil_name = Recipient(9, "ana@example.com", "Ana\r\nBcc: victim@example.com\r\n\r\n<html>")
    raw = MessageFactory(cfg, hostile).build(evil_name)
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0] for line in head.split(b"\r\n") if not line.startswith((b" ", b"\t"))]
    assert b"Bcc" not in names and b"X-Evil" not in names
    assert len(names) == len(set(names))
    msg = parse(raw)
    assert msg["Bcc"] is None and msg.defects == []
    assert "\n" not in msg["Subject"] and "Bcc: victim" in msg["Subject"]
    with pytest.raises(RenderError, match="not a single email address"):
        MessageFactory(cfg, hostile).build(Recipient(9, "ana@example.com\r\nBcc: victim@example.com"))


@pytest.fixture
def dkim_key(tmp_path: Path) -> tuple[Path, bytes]:
    if not shutil.which("openssl"):
        pytest.skip("no openssl to make a test DKIM key")
    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def test_dkim_signature_verifies_and_covers_one_click_unsubscribe(tmp_path: Path, sqlite_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   dkim_key: tuple[Path, bytes]) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    key_path, record = dkim_key
    signed_cfg = digest_config(tmp_path, sqlite_url)
    signed_cfg = replace(signed_cfg, dkim=replace(signed_cfg.dkim, selector="mail", domain="example.org",
                                                  private_key_path=str(key_path)))
    raw = MessageFactory(signed_cfg, mailing(signed_cfg)).build(ANA)
    assert raw.startswith(b"DKIM-Signature:")

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"mail._domainkey.example.org." else None

    assert dkim.verify(raw, dnsfunc=dns)
    signature = parse(raw)["DKIM-Signature"]
    signed = re.search(r"h=([^;]+)", "".join(str(signature).split())).group(1).lower().split(":")
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "to", "subject", "message-id"} <= set(signed)
    # Over-signed: each identity header listed once more than it occurs, so none can be added.
    for name in ("from", "to", "subject", "date", "message-id", "reply-to", "list-id", "list-unsubscribe",
                 "list-unsubscribe-post"):
        assert signed.count(name) == 2, name
    assert not dkim.verify(b"From: Someone Else <ceo@example.org>\r\n" + raw, dnsfunc=dns)
    tampered = raw.replace(b"List-Unsubscribe=One-Click", b"List-Unsubscribe=Nope")
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_names_are_escaped_in_html_and_plain_in_text(cfg: Config) -> None:
    folder = cfg.root / "templates" / "email"
    folder.mkdir(parents=True)
    (folder / "digest.txt.j2").write_text("Dear {{ ph.name }}. {{ ph.unsubscribe_url }}\n")
    msg = parse(MessageFactory(cfg, mailing(cfg)).build(Recipient(3, "tj@example.com", 'Tom & "Jerry"')))
    text, html = msg.get_payload()
    assert text.get_content().startswith('Dear Tom & "Jerry". https://news.example.org/unsubscribe/')
    assert "<p>Hello Tom &amp; &quot;Jerry&quot;,</p>" in html.get_content()
