"""Attack: forging, replaying and crashing the bounce webhooks, against the real `serve`.

With SendGrid configured, its public verification key used to open the Mailgun and Postmark
routes too; replays counted again when re-encoded or sent concurrently; a deep JSON body
ended in a traceback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from newsletter.store import open_store
from newsletter.subscribers import registry
from newsletter.subscribers.profile import Profile
from tests.support.cli import run_cli
from tests.support.configs import base_config, write_config
from tests.support.serve import Served, free_port

SENDGRID = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(SENDGRID.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
MAILGUN_KEY = "mailgun-signing-key-" + "7" * 32
POSTMARK_PASSWORD = "postmark-password-" + "9" * 32
ENV = {"SG_PUBLIC_KEY": SENDGRID_PUBLIC, "MG_SIGNING_KEY": MAILGUN_KEY, "PM_USER": "hooks",
       "PM_PASSWORD": POSTMARK_PASSWORD}
SECTIONS = {"sendgrid": {"public_key_env": "SG_PUBLIC_KEY"}, "mailgun": {"signing_key_env": "MG_SIGNING_KEY"},
            "postmark": {"username_env": "PM_USER", "password_env": "PM_PASSWORD"}}
ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # of P-256


def serve(tmp_path: Path, store_url: str, *providers: str) -> Served:
    data = base_config(store_url)
    data["transport"]["soft_bounce_limit"] = 3
    data["webhooks"] = {p: SECTIONS[p] for p in providers}
    return Served(write_config(tmp_path, data), free_port(), env=ENV)


@pytest.fixture
def store(store_url: str) -> Iterator[sa.Engine]:
    engine = open_store(store_url)
    with engine.begin() as conn:
        registry.add(conn, "victim@example.org", Profile("", "en", (), ()), registry.Consent(), source="test")
    yield engine
    engine.dispose()


def victim(engine: sa.Engine) -> tuple[str, int, str | None]:
    with engine.connect() as conn:
        row = registry.find(conn, "victim@example.org")
        return row.status, row.soft_bounces, registry.suppression_reason(conn, "victim@example.org")


def mailgun_call(key: str, event: dict, token: str | None = None) -> dict:
    ts, token = str(int(time.time())), token or secrets.token_hex(25)
    return {"signature": {"timestamp": ts, "token": token,
                          "signature": hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()},
            "event-data": event}


COMPLAINT = {"event": "complained", "recipient": "victim@example.org"}
SOFT = {"event": "failed", "severity": "temporary", "recipient": "victim@example.org"}


def test_the_sendgrid_public_key_opens_no_other_route(tmp_path: Path, store_url: str, store: sa.Engine) -> None:
    site = serve(tmp_path, store_url, "sendgrid")
    try:
        forged = mailgun_call(SENDGRID_PUBLIC, COMPLAINT)
        assert httpx.post(site.url + "/webhooks/mailgun", json=forged).status_code == 404
        postmark = {"RecordType": "Bounce", "ID": 1, "Type": "HardBounce", "Email": "victim@example.org"}
        assert httpx.post(site.url + "/webhooks/postmark", json=postmark,
                          auth=("hooks", SENDGRID_PUBLIC)).status_code == 404
    finally:
        site.stop()
    site = serve(tmp_path, store_url, "sendgrid", "mailgun", "postmark")
    try:
        # Every provider configured: the public key is still no one's shared secret.
        assert httpx.post(site.url + "/webhooks/mailgun", json=forged).status_code == 403
        assert httpx.post(site.url + "/webhooks/postmark", json=postmark,
                          auth=("hooks", SENDGRID_PUBLIC)).status_code == 403
        assert httpx.post(site.url + "/webhooks/postmark", json=postmark,
                          auth=("someone", POSTMARK_PASSWORD)).status_code == 403
    finally:
        site.stop()
    assert victim(store) == ("active", 0, None)


def test_replays_are_applied_once(tmp_path: Path, store_url: str, store: sa.Engine) -> None:
    site = serve(tmp_path, store_url, "sendgrid", "mailgun")
    try:
        # Six concurrent copies of one Mailgun call: one soft bounce, not six.
        call = mailgun_call(MAILGUN_KEY, SOFT)
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: httpx.post(site.url + "/webhooks/mailgun", json=call, timeout=60),
                                    range(6)))
        assert [a.status_code for a in answers] == [200] * 6
        assert sum(a.json()["recorded"] for a in answers) == 1
        assert victim(store)[1] == 1
        # The same token re-signed (a fresh timestamp) is still the same event.
        again = mailgun_call(MAILGUN_KEY, SOFT, token=call["signature"]["token"])
        assert httpx.post(site.url + "/webhooks/mailgun", json=again).json()["duplicates"] == 1

        body = json.dumps([{"email": "victim@example.org", "event": "bounce", "type": "blocked",
                            "sg_event_id": "sg-evt-1"}]).encode()
        ts = str(int(time.time()))
        r, s = decode_dss_signature(SENDGRID.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256())))
        spellings = [base64.b64encode(encode_dss_signature(r, s)).decode(),
                     base64.b64encode(encode_dss_signature(r, ORDER - s)).decode(),  # the other valid s
                     base64.b64encode(encode_dss_signature(r, s)).decode() + "*"]  # a stray character
        for signature in spellings:
            answer = httpx.post(site.url + "/webhooks/sendgrid", content=body, headers={
                "Content-Type": "application/json", "X-Twilio-Email-Event-Webhook-Timestamp": ts,
                "X-Twilio-Email-Event-Webhook-Signature": signature})
            assert answer.status_code in (200, 403), answer.text
    finally:
        site.stop()
    # One Mailgun soft bounce and one SendGrid one, whatever the copies: still under the limit of 3.
    assert victim(store) == ("active", 2, None)


def test_malformed_calls_get_a_4xx_never_a_500(tmp_path: Path, store_url: str, store: sa.Engine) -> None:
    site = serve(tmp_path, store_url, "sendgrid", "mailgun", "postmark")
    try:
        deep = b"[" * 100_000 + b"]" * 100_000
        assert httpx.post(site.url + "/webhooks/mailgun", content=deep).status_code == 400
        nested = mailgun_call(MAILGUN_KEY, {"event": "delivered", "x": json.loads("[" * 40 + "]" * 40)})
        assert httpx.post(site.url + "/webhooks/mailgun", json=nested).status_code == 400
        for body in (b"", b"\xff\xfe", b"null", b"[]", b'{"signature": 5}', b'{"signature": {"timestamp": "nan"}}'):
            assert 400 <= httpx.post(site.url + "/webhooks/mailgun", content=body).status_code < 500, body
        assert httpx.post(site.url + "/webhooks/sendgrid", content=b"x" * (6 * 1024 * 1024)).status_code == 413
        assert httpx.post(site.url + "/webhooks/postmark", content=b"{}", headers={
            "Authorization": "Basic " + base64.b64encode(b"hooks:" + POSTMARK_PASSWORD.encode()).decode()
        }).status_code == 400  # no identity: cannot be told from a replay
        for number in ("99999999999999999999999999", "2147483648", "-1"):
            assert httpx.get(f"{site.url}/archive/{number}").status_code == 404
        assert "Traceback" not in site.log.read_text()
    finally:
        site.stop()
    assert victim(store) == ("active", 0, None)


def test_the_old_shared_secret_key_is_refused_with_what_to_write(tmp_path: Path, sqlite_url: str) -> None:
    data = base_config(sqlite_url)
    data["transport"] = {"kind": "mailgun", "api_token_env": "MG_API", "domain": "mg.example.org",
                         "webhook_secret_env": "WEBHOOK_SECRET"}
    proc = run_cli("status", config=write_config(tmp_path, data))
    assert proc.returncode == 2
    assert "transport.webhook_secret_env: no longer read" in proc.stderr
    assert '[webhooks.mailgun]' in proc.stderr and "signing_key_env" in proc.stderr
