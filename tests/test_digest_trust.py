"""What mail filters make of every copy we produce: SpamAssassin scores it at or below 0, and
Mail::DKIM (an implementation independent of the dkimpy we sign with) verifies its signature
and refuses it once a second From, Subject or other identity header is put above ours."""

from __future__ import annotations

import types
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import dkim
import pytest

from newsletter.config import Config
from newsletter.digest import MailingContent, MessageFactory, render_mailing
from newsletter.digest import dkim as dkim_module
from newsletter.recipients import Recipient
from newsletter.send.smtp import SMTPTransport
from newsletter.send.transport import Envelope
from tests.support import dns, mailcheck
from tests.support.digest import CREATED, brief, briefs, digest_config
from tests.support.smtpd import SMTPServer

KEY = "digest-trust-test-key-0123456789abcdef"
ANA = Recipient(7, "ana@example.com", "Ana Pérez")
# The identity headers a forwarder could add a copy of above a valid signature.
OVERSIGNED = ("From", "To", "Subject", "Date", "Message-ID", "Reply-To", "List-Id", "List-Unsubscribe",
              "List-Unsubscribe-Post")


@pytest.fixture(scope="session")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> mailcheck.DkimKey:
    return mailcheck.make_dkim_key(tmp_path_factory.mktemp("dkim"))


@pytest.fixture(scope="session")
def ed_key(tmp_path_factory: pytest.TempPathFactory) -> mailcheck.DkimKey:
    return mailcheck.make_ed25519_key(tmp_path_factory.mktemp("dkim-ed25519"))


@pytest.fixture(scope="session")
def dns_port(dkim_key: mailcheck.DkimKey, ed_key: mailcheck.DkimKey) -> Iterator[int]:
    with dns.serve({dkim_key.dns_name: dkim_key.record, ed_key.dns_name: ed_key.record}) as port:
        yield port


@pytest.fixture(scope="session")
def mail_dkim(dns_port: int) -> mailcheck.MailDkim:
    return mailcheck.mail_dkim(dns_port)


@pytest.fixture(scope="session")
def spamassassin(tmp_path_factory: pytest.TempPathFactory, dns_port: int) -> mailcheck.SpamAssassin:
    return mailcheck.spamassassin(tmp_path_factory.mktemp("spamassassin"), dns_port)


@pytest.fixture
def cfg(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    return digest_config(tmp_path, sqlite_url)


def signed(cfg: Config, key: mailcheck.DkimKey) -> Config:
    return replace(cfg, dkim=replace(cfg.dkim, selector=key.selector, domain=key.domain,
                                     private_key_path=str(key.path)))


def content(cfg: Config, edition: str, *, mailing_id: int | None = 42) -> MailingContent:
    """A mailing as editions would make it: briefs with and without analysis and countries."""
    ed = cfg.edition(edition)
    items = briefs(4, language=ed.language) + [brief(5, analysis="", countries=(), language=ed.language)]
    r = render_mailing(cfg, ed, items, mailing_id=mailing_id, created_at=CREATED)
    return MailingContent(mailing_id, ed.name, ed.language, r.subject, r.preheader, r.html, r.text,
                          r.content_hash, CREATED)


@pytest.mark.parametrize("edition", ["daily-en", "weekly-es"])
@pytest.mark.parametrize("with_dkim", [False, True], ids=["unsigned", "dkim"])
def test_spamassassin_scores_every_copy_at_or_below_zero(cfg: Config, dkim_key: mailcheck.DkimKey,
                                                        spamassassin: mailcheck.SpamAssassin, edition: str,
                                                        with_dkim: bool) -> None:
    config = signed(cfg, dkim_key) if with_dkim else cfg
    raw = MessageFactory(config, content(config, edition)).build(ANA)
    rules = spamassassin.rules(raw)
    assert sum(rules.values()) <= 0, f"SpamAssassin scored {rules}"
    # Nothing in the copy scores: only "it has HTML" (0.001) and "it is signed" (outweighed by "validly").
    assert {rule for rule, score in rules.items() if score > 0} <= {"HTML_MESSAGE", "DKIM_SIGNED"}, rules
    if with_dkim:
        # SpamAssassin fetched our key from the local DNS and found the signature good.
        assert {"DKIM_VALID", "DKIM_VALID_AU"} <= set(rules)
    else:
        assert not any(rule.startswith("DKIM") for rule in rules)


@pytest.mark.parametrize("edition", ["daily-en", "weekly-es"])
def test_spamassassin_scores_a_signed_test_copy_of_a_draft_with_a_logo_at_or_below_zero(
        tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, dkim_key: mailcheck.DkimKey,
        spamassassin: mailcheck.SpamAssassin, edition: str) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", KEY)
    config = signed(digest_config(tmp_path, sqlite_url, logo_url="https://briefs.example.org/logo.png"), dkim_key)
    raw = MessageFactory(config, content(config, edition, mailing_id=None), test=True).build(
        Recipient(None, "editor@example.org"))
    rules = spamassassin.rules(raw)
    assert sum(rules.values()) <= 0, f"SpamAssassin scored {rules}"
    assert {"DKIM_VALID", "DKIM_VALID_AU"} <= set(rules)


@pytest.mark.parametrize("edition", ["daily-en", "weekly-es"])
def test_mail_dkim_verifies_our_signature(cfg: Config, dkim_key: mailcheck.DkimKey, mail_dkim: mailcheck.MailDkim,
                                          edition: str) -> None:
    config = signed(cfg, dkim_key)
    factory = MessageFactory(config, content(config, edition))
    assert mail_dkim.verify(factory.build(ANA)) == "pass"
    test_copy = MessageFactory(config, content(config, edition, mailing_id=None), test=True)
    assert mail_dkim.verify(test_copy.build(Recipient(None, "editor@example.org"))) == "pass"


@pytest.mark.parametrize("header", OVERSIGNED)
def test_a_second_identity_header_above_the_signature_fails_mail_dkim(
        cfg: Config, dkim_key: mailcheck.DkimKey, mail_dkim: mailcheck.MailDkim, header: str) -> None:
    raw = MessageFactory(signed(cfg, dkim_key), content(cfg, "daily-en")).build(ANA)
    forged = {"From": "Your Bank <security@example.org>", "Subject": "Your account is locked",
              "Reply-To": "attacker@example.net", "To": "someone@example.net"}.get(header, "forged")
    # Where a forwarder puts it: at the top, above the signature, or just under it.
    assert mail_dkim.verify(f"{header}: {forged}\r\n".encode() + raw).startswith("fail")
    signature_end = raw.index(b"\r\n", raw.index(b" b=")) + 2
    while raw[signature_end:signature_end + 1] in (b" ", b"\t"):
        signature_end = raw.index(b"\r\n", signature_end) + 2
    below = raw[:signature_end] + f"{header}: {forged}\r\n".encode() + raw[signature_end:]
    assert mail_dkim.verify(below).startswith("fail")


def test_an_ed25519_second_signature_verifies_and_the_rsa_one_still_carries_the_message(
        cfg: Config, dkim_key: mailcheck.DkimKey, ed_key: mailcheck.DkimKey, mail_dkim: mailcheck.MailDkim) -> None:
    config = signed(cfg, dkim_key)
    config = replace(config, dkim=replace(config.dkim, ed25519_selector=ed_key.selector,
                                          ed25519_private_key_path=str(ed_key.path)))
    raw = MessageFactory(config, content(config, "weekly-es")).build(ANA)
    assert raw.count(b"DKIM-Signature:") == 2 and b"a=ed25519-sha256" in raw
    # Debian's Mail::DKIM knows no Ed25519 yet: like any such receiver it sets that signature aside,
    # and the RSA one carries the message. dkimpy (with PyNaCl) checks both.
    assert mail_dkim.signatures(raw) == ["pass", "invalid (unsupported algorithm ed25519-sha256)"]
    assert mail_dkim.verify(raw) == "pass"
    records = {k.dns_name.encode(): k.record for k in (dkim_key, ed_key)}
    verifier = dkim.DKIM(raw)
    assert verifier.verify(idx=0, dnsfunc=lambda name, timeout=5: records.get(name))
    assert verifier.verify(idx=1, dnsfunc=lambda name, timeout=5: records.get(name))
    # Over-signed under both: a second From above breaks each signature.
    forged = b"From: Your Bank <security@example.org>\r\n" + raw
    assert mail_dkim.verify(forged).startswith("fail")
    assert not dkim.DKIM(forged).verify(idx=1, dnsfunc=lambda name, timeout=5: records.get(name))


def test_mail_dkim_refuses_a_changed_body(cfg: Config, dkim_key: mailcheck.DkimKey,
                                         mail_dkim: mailcheck.MailDkim) -> None:
    raw = MessageFactory(signed(cfg, dkim_key), content(cfg, "daily-en")).build(ANA)
    assert mail_dkim.verify(raw.replace(b"Donate", b"Donat3", 1)).startswith("fail")


def test_copies_sent_over_smtp_as_prepared_data_arrive_as_built_and_mail_dkim_verifies_them(
        cfg: Config, dkim_key: mailcheck.DkimKey, ed_key: mailcheck.DkimKey, mail_dkim: mailcheck.MailDkim,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What the send worker hands SMTP (`build_data`: stuffed once per mailing, per copy only the
    reader's values) is, once the server has taken the dots back out, the copy `build` makes."""
    monkeypatch.setattr(dkim_module, "time", types.SimpleNamespace(time=lambda: 1_790_000_000))
    config = signed(cfg, dkim_key)
    config = replace(config, dkim=replace(config.dkim, ed25519_selector=ed_key.selector,
                                          ed25519_private_key_path=str(ed_key.path)))
    factory = MessageFactory(config, content(config, "daily-en"))
    readers = [Recipient(i, f"r{i}@example.com", name) for i, name in enumerate(
        ["Ana Pérez", "." * 200, "y" * 70 + ".z", "名前 テスト", "x" * 68 + "." + "y" * 20])]
    with SMTPServer() as server:
        transport = SMTPTransport("127.0.0.1", server.port, ehlo_name="test.example.org")
        results = transport.send([Envelope(factory.envelope_sender, r.email, key=str(r.id), data=factory.build_data(r))
                                  for r in readers])
        transport.close()
    assert all(result.ok for result in results)
    received = dict(server.recorder.messages)
    for reader in readers:
        assert received[reader.email] == factory.build(reader)
        assert mail_dkim.verify(received[reader.email]) == "pass", reader
