"""A copy made from the mailing's precompiled pieces is byte for byte what the generic path makes.

`MessageFactory` encodes, dot-stuffs and (for DKIM) canonicalises the mailing once and per copy
only joins the reader's values in. These tests hold that shortcut to the long way round, on the
real templates and readers chosen to break it: names that start lines with ".", fill whole
quoted-printable lines, need encoding, or push a soft line break onto a gap's edge.
"""

from __future__ import annotations

import email
import email.policy
import types
from dataclasses import replace
from pathlib import Path

import dkim
import pytest

from newsletter.config import Config
from newsletter.digest import MailingContent, MessageFactory, render_mailing
from newsletter.digest import dkim as dkim_module
from newsletter.digest import message as message_module
from newsletter.errors import RenderError
from newsletter.recipients import Recipient
from newsletter.send.smtp import dot_stuff
from tests.support import mailcheck
from tests.support.digest import CREATED, briefs, digest_config

KEY = "digest-bytes-test-key-0123456789abcdef"
NOW = 1_790_000_000
NAMES = [
    "", "Ana Pérez", ".dot", "..", "." * 75, "." * 76, "." * 200, "x" * 60, "y" * 70 + ".z", "a  b",
    "trailing ", "tab\tinside", "eq=ual", "名前 テスト", "😀 emoji", "Zoë  .  x", "a" * 300, " .leading",
    "= . =", "x" * 68 + "." + "y" * 20, "<b>&amp;</b>",
]
# Every name with a short address, and with one long enough to fold the To header.
READERS = [Recipient(100 + i, address, name) for i, name in enumerate(NAMES)
           for address in (f"r{i}@example.com", f"{'l' * 50}.{i}@{'d' * 40}.example.com")]


@pytest.fixture
def cfg(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    # One signing time for every copy, so two ways of signing the same copy can be compared.
    monkeypatch.setattr(dkim_module, "time", types.SimpleNamespace(time=lambda: NOW))
    return digest_config(tmp_path, sqlite_url)


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> mailcheck.DkimKey:
    return mailcheck.make_dkim_key(tmp_path_factory.mktemp("dkim"))


def signed(cfg: Config, key: mailcheck.DkimKey) -> Config:
    return replace(cfg, dkim=replace(cfg.dkim, selector=key.selector, domain=key.domain,
                                     private_key_path=str(key.path)))


def content(cfg: Config, edition: str = "daily-en") -> MailingContent:
    ed = cfg.edition(edition)
    r = render_mailing(cfg, ed, briefs(4, language=ed.language), mailing_id=42, created_at=CREATED)
    return MailingContent(42, ed.name, ed.language, r.subject, r.preheader, r.html, r.text, r.content_hash, CREATED)


def split_signature(raw: bytes) -> tuple[bytes, bytes]:
    """(the DKIM-Signature fields, the message they sign)."""
    start = raw.index(b"\r\nFrom: ") + 2
    return raw[:start], raw[start:]


@pytest.mark.parametrize("edition", ["daily-en", "weekly-es", "own template"])
def test_smtp_data_is_the_copy_dot_stuffed_for_every_reader(cfg: Config, edition: str) -> None:
    if edition == "own template":
        # A publisher's text template that starts lines with the bare name: a gap that opens with a ".".
        folder = cfg.root / "templates" / "email"
        folder.mkdir(parents=True)
        (folder / "digest.txt.j2").write_text("{{ ph.name }}\n{{ ph.name }}. {{ ph.unsubscribe_url }}\n")
        edition = "daily-en"
    factory = MessageFactory(cfg, content(cfg, edition))
    stuffed = 0
    for reader in READERS:
        raw = factory.build(reader)
        data = factory.build_data(reader)
        assert data == dot_stuff(raw), reader
        stuffed += b"\n.." in data and b"\n.." not in raw
    assert stuffed, "no reader put a '.' at a line's start: the test lost its point"


def test_the_signature_is_the_generic_signers_over_the_same_bytes(cfg: Config, dkim_key: mailcheck.DkimKey) -> None:
    config = signed(cfg, dkim_key)
    factory = MessageFactory(config, content(config))
    generic = factory._dkim
    assert generic is not None
    for reader in READERS:
        raw = factory.build(reader)
        signature, message = split_signature(raw)
        # The generic signer parses and canonicalises the whole message; RSA PKCS#1 v1.5 is deterministic.
        assert generic.sign(message, now=NOW) == signature, reader
        assert factory.build_data(reader) == dot_stuff(raw)


def test_every_copy_is_short_lined_quoted_printable_that_reads_back_as_the_readers_parts(
        cfg: Config, dkim_key: mailcheck.DkimKey) -> None:
    config = signed(cfg, dkim_key)
    factory = MessageFactory(config, content(config))
    records = {dkim_key.dns_name.encode(): dkim_key.record}
    for reader in READERS:
        raw = factory.build(reader)
        body = raw.partition(b"\r\n\r\n")[2]
        assert max(len(line) for line in body.split(b"\r\n")) <= 76, reader
        assert b"\n" not in body.replace(b"\r\n", b"") and b"\r" not in body.replace(b"\r\n", b"")
        text, html = email.message_from_bytes(raw, policy=email.policy.default).get_payload()
        want_html, want_text = factory.parts(reader)
        assert text.get_content().replace("\r\n", "\n") == want_text.replace("\r\n", "\n"), reader
        assert html.get_content().replace("\r\n", "\n") == want_html.replace("\r\n", "\n"), reader
        assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: records.get(name)), reader


@pytest.mark.parametrize("value", [
    "", "plain", "a b", "a  b", "a ", " a", "a\tb", "a\t", "a=b", "tab\t\tx", "line\nbreak", "é", "~!<>", "a \t b",
    "x" * 80, "x " * 40, "\x7f", "\x00",
])
def test_the_quick_literal_test_agrees_with_the_quoted_printable_pattern(value: str) -> None:
    assert message_module._literal(value) == bool(message_module._QP_LITERAL.fullmatch(value))


@pytest.mark.parametrize("address, single", [
    ("ana@example.com", True), ("o.'brien+news@example.co.uk", True),
    ("ana @example.com", False), ("ana\t@example.com", False), ("ana\u2028@example.com", False),
    ("ana\xa0@example.com", False), ("ana\x1f@example.com", False), ("ana\x7f@example.com", True),
    ("ana.example.com", False), ("", False),
])
def test_a_copy_goes_only_to_a_single_address(cfg: Config, address: str, single: bool) -> None:
    factory = MessageFactory(cfg, content(cfg))
    if single:
        assert factory.build(Recipient(1, address, "Ana")).startswith(b"From: ")
    else:
        with pytest.raises(RenderError, match="not a single email address"):
            factory.build(Recipient(1, address, "Ana"))
