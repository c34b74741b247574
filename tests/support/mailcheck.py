"""What mail filters make of our copies: SpamAssassin's score and Mail::DKIM's verdict, run locally.

Both look DKIM keys up at a DNS server of our own on 127.0.0.1 (`tests.support.dns`), so a
signed copy is checked with its real key and no query leaves the machine. SpamAssassin runs
with its installed rules only: network tests (DNS blocklists, Razor, Pyzor, DCC) and Bayes off.
"""

from __future__ import annotations

import base64
import email
import email.policy
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

VERIFY_SCRIPT = Path(__file__).with_name("mail_dkim_verify.pl")
SELECTOR = "mail"
DOMAIN = "example.org"
RUN_SECONDS = 120


@dataclass(frozen=True)
class DkimKey:
    path: Path  # the private key, PEM
    record: bytes  # its DNS TXT record
    selector: str = SELECTOR
    domain: str = DOMAIN

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}."


def make_dkim_key(directory: Path) -> DkimKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "dkim.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return DkimKey(path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public))


def make_ed25519_key(directory: Path, selector: str = "ed") -> DkimKey:
    """An Ed25519 key (RFC 8463) for the optional second signature; its record carries the raw public key."""
    key = ed25519.Ed25519PrivateKey.generate()
    path = directory / "dkim-ed25519.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return DkimKey(path, b"v=DKIM1; k=ed25519; p=" + base64.b64encode(public), selector=selector)


def require(thing: str, env: str, why: str) -> None:
    """Skip the test for lack of `thing`, or fail when the environment says it must be there."""
    if os.environ.get(env):
        pytest.fail(f"{thing} is missing but {env} is set: {why}")
    pytest.skip(f"{thing} is missing: {why}")


class MailDkim:
    """Mail::DKIM's verdict on a message: "pass", or "fail (reason)", "none", ..."""

    def __init__(self, dns_port: int) -> None:
        self.dns_port = dns_port

    def _run(self, raw: bytes) -> list[str]:
        done = subprocess.run(["perl", str(VERIFY_SCRIPT), str(self.dns_port)], input=raw, capture_output=True,
                              timeout=RUN_SECONDS)
        if done.returncode != 0:
            raise AssertionError(f"mail_dkim_verify.pl failed: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode().splitlines()

    def verify(self, raw: bytes) -> str:
        return self._run(raw)[-1].removeprefix("result: ")

    def signatures(self, raw: bytes) -> list[str]:
        """The verdict on each signature, in the order they appear."""
        return [line.removeprefix("signature: ") for line in self._run(raw) if line.startswith("signature: ")]


def mail_dkim(dns_port: int) -> MailDkim:
    if not shutil.which("perl") or subprocess.run(["perl", "-MMail::DKIM::Verifier", "-MNet::DNS::Resolver", "-e1"],
                                                  capture_output=True).returncode != 0:
        require("Mail::DKIM", "NEWSLETTER_REQUIRE_MAIL_DKIM", "apt-get install libmail-dkim-perl")
    return MailDkim(dns_port)


class SpamAssassin:
    """SpamAssassin's rules hit by a message and their scores."""

    def __init__(self, home: Path, dns_port: int) -> None:
        self.home = home
        settings = [
            f"dns_server 127.0.0.1:{dns_port}", "dns_available yes",
            "skip_rbl_checks 1", "skip_uribl_checks 1", "use_razor2 0", "use_pyzor 0", "use_dcc 0",
            "use_bayes 0", "bayes_auto_learn 0",
            "add_header all Tests _TESTSSCORES(,)_",
        ]
        prefs = home / "user_prefs"
        prefs.write_text("")
        self.command = ["spamassassin", "--prefspath", str(prefs), *(f"--cf={s}" for s in settings)]

    def rules(self, raw: bytes) -> dict[str, float]:
        done = subprocess.run(self.command, input=raw, capture_output=True, timeout=RUN_SECONDS,
                              env={**os.environ, "HOME": str(self.home)})
        if done.returncode != 0:
            raise AssertionError(f"spamassassin failed: {done.stderr.decode(errors='replace')}")
        checked = email.message_from_bytes(done.stdout, policy=email.policy.default)
        tests = "".join(str(checked["X-Spam-Tests"] or "").split())
        if tests in ("", "none"):
            return {}
        return {name: float(score) for name, score in (hit.split("=") for hit in tests.split(","))}


def spamassassin(home: Path, dns_port: int) -> SpamAssassin:
    if not shutil.which("spamassassin"):
        require("spamassassin", "NEWSLETTER_REQUIRE_SPAMASSASSIN", "apt-get install spamassassin")
    return SpamAssassin(home, dns_port)
