"""Bounce and complaint webhooks, signed as each provider signs them, against the real server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from newsletter.store import open_store, schema
from newsletter.subscribers import registry
from newsletter.subscribers.profile import Profile
from tests.support.configs import base_config, write_config
from tests.support.serve import Served, free_port

MAILGUN_KEY = "key-mailgun-signing-0123456789abcdef"
POSTMARK_CREDENTIALS = "hooks:correct-horse-battery-staple-0123456789"
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(SENDGRID_KEY.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
PEOPLE = ("hard@example.org", "soft@example.org", "angry@example.org", "fine@example.org")
# Each provider's own section and variables, as the README shows them.
SECTIONS = {"mailgun": {"signing_key_env": "TEST_MAILGUN_SIGNING_KEY"},
            "sendgrid": {"public_key_env": "TEST_SENDGRID_PUBLIC_KEY"},
            "postmark": {"username_env": "TEST_POSTMARK_USER", "password_env": "TEST_POSTMARK_PASSWORD"}}
ENV = {"TEST_MAILGUN_SIGNING_KEY": MAILGUN_KEY, "TEST_SENDGRID_PUBLIC_KEY": SENDGRID_PUBLIC,
       "TEST_POSTMARK_USER": POSTMARK_CREDENTIALS.split(":")[0],
       "TEST_POSTMARK_PASSWORD": POSTMARK_CREDENTIALS.split(":")[1]}


def serve(tmp_path: Path, store_url: str, provider: str) -> Served:
    data = base_config(store_url)
    data["transport"] = {"kind": provider, "api_token_env": "UNUSED_API_TOKEN", "domain": "mg.example.org",
                         "soft_bounce_limit": 2}
    data["webhooks"] = {provider: SECTIONS[provider]}
    return Served(write_config(tmp_path, data), free_port(), env={**ENV, "UNUSED_API_TOKEN": "unused"})


@pytest.fixture
def store(store_url: str) -> Iterator[sa.Engine]:
    engine = open_store(store_url)
    with engine.begin() as conn:
        for email in PEOPLE:
            registry.add(conn, email, Profile("", "en", (), ()), registry.Consent(), source="test")
    yield engine
    engine.dispose()


def state(engine: sa.Engine) -> tuple[dict[str, str], dict[str, str], list[tuple[str, str, str]]]:
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(schema.subscribers.c.email, schema.subscribers.c.status)).all())
        reasons = dict(conn.execute(sa.select(schema.suppressions.c.email, schema.suppressions.c.reason)).all())
        events = [tuple(r) for r in conn.execute(sa.select(schema.events.c.kind, schema.events.c.email,
                                                           schema.events.c.provider).order_by(schema.events.c.id))]
    return statuses, reasons, events


EXPECTED_STATUSES = {"hard@example.org": "bounced", "soft@example.org": "bounced",
                     "angry@example.org": "complained", "fine@example.org": "active"}
EXPECTED_REASONS = {"hard@example.org": "hard_bounce", "soft@example.org": "soft_bounce_limit",
                    "angry@example.org": "complaint"}


def assert_untouched(engine: sa.Engine) -> None:
    statuses, reasons, events = state(engine)
    assert set(statuses.values()) == {"active"} and reasons == {} and events == []


def mailgun_body(event: dict, key: str = MAILGUN_KEY, timestamp: float | None = None) -> dict:
    ts = str(int(timestamp if timestamp is not None else time.time()))
    token = secrets.token_hex(25)
    signature = hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": ts, "token": token, "signature": signature}, "event-data": event}


def test_mailgun(tmp_path: Path, store_url: str, store: sa.Engine) -> None:
    site = serve(tmp_path, store_url, "mailgun")
    try:
        url = site.url + "/webhooks/mailgun"
        hard = {"event": "failed", "severity": "permanent", "recipient": "hard@example.org",
                "delivery-status": {"code": 550, "message": "5.1.1 user unknown"}}
        forged = mailgun_body(hard, key="not-the-key")
        assert httpx.post(url, json=forged).status_code == 403
        stale = mailgun_body(hard, timestamp=time.time() - 3600)
        assert httpx.post(url, json=stale).status_code == 403
        unsigned = {"event-data": hard}
        assert httpx.post(url, json=unsigned).status_code == 401
        altered = mailgun_body(hard)
        altered["signature"]["token"] = "x" + altered["signature"]["token"][1:]
        assert httpx.post(url, json=altered).status_code == 403
        assert_untouched(store)

        soft = mailgun_body({"event": "failed", "severity": "temporary", "recipient": "soft@example.org"})
        assert httpx.post(url, json=soft).json() == {"recorded": 1, "duplicates": 0, "suppressed": 0}
        # The same signed call again (a retry, or a replay) does not count the bounce twice.
        assert httpx.post(url, json=soft).json() == {"recorded": 0, "duplicates": 1, "suppressed": 0}
        with store.connect() as conn:
            assert registry.find(conn, "soft@example.org").soft_bounces == 1
        for event in (hard,
                      {"event": "failed", "severity": "temporary", "recipient": "soft@example.org"},
                      {"event": "complained", "recipient": "angry@example.org"},
                      {"event": "delivered", "recipient": "fine@example.org"}):
            response = httpx.post(url, json=mailgun_body(event))
            assert response.status_code == 200, response.text
    finally:
        site.stop()
    statuses, reasons, events = state(store)
    assert statuses == EXPECTED_STATUSES and reasons == EXPECTED_REASONS
    assert [k for k, _, _ in events] == ["soft_bounce", "hard_bounce", "soft_bounce", "complaint", "delivered"]
    assert {p for _, _, p in events} == {"mailgun"}


def sendgrid_headers(body: bytes, key: ec.EllipticCurvePrivateKey = SENDGRID_KEY) -> dict[str, str]:
    ts = str(int(time.time()))
    signature = key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"Content-Type": "application/json", "X-Twilio-Email-Event-Webhook-Timestamp": ts,
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode()}


def test_sendgrid(tmp_path: Path, store_url: str, store: sa.Engine) -> None:
    events = [
        {"email": "hard@example.org", "event": "bounce", "type": "bounce", "status": "5.1.1",
         "reason": "550 5.1.1 unknown user", "timestamp": 1764290000, "sg_event_id": "e1"},
        {"email": "soft@example.org", "event": "bounce", "type": "blocked", "reason": "452 try later",
         "timestamp": 1764290001, "sg_event_id": "e2"},
        {"email": "soft@example.org", "event": "bounce", "type": "blocked", "reason": "452 try later",
         "timestamp": 1764290002, "sg_event_id": "e3"},
        {"email": "angry@example.org", "event": "spamreport", "timestamp": 1764290003, "sg_event_id": "e4"},
        {"email": "fine@example.org", "event": "delivered", "timestamp": 1764290004, "sg_event_id": "e5"},
    ]
    body = json.dumps(events).encode()
    site = serve(tmp_path, store_url, "sendgrid")
    try:
        url = site.url + "/webhooks/sendgrid"
        wrong_key = sendgrid_headers(body, ec.generate_private_key(ec.SECP256R1()))
        assert httpx.post(url, content=body, headers=wrong_key).status_code == 403
        tampered = body.replace(b"fine@example.org", b"evil@example.org")
        assert httpx.post(url, content=tampered, headers=sendgrid_headers(body)).status_code == 403
        assert httpx.post(url, content=body, headers={"Content-Type": "application/json"}).status_code == 401
        assert_untouched(store)
        signed = sendgrid_headers(body)
        response = httpx.post(url, content=body, headers=signed)
        assert response.status_code == 200 and response.json() == {"recorded": 5, "duplicates": 0, "suppressed": 3}
        assert httpx.post(url, content=body, headers=signed).json()["duplicates"] == 5
    finally:
        site.stop()
    statuses, reasons, recorded = state(store)
    assert statuses == EXPECTED_STATUSES and reasons == EXPECTED_REASONS
    assert [k for k, _, _ in recorded] == ["hard_bounce", "soft_bounce", "soft_bounce", "complaint", "delivered"]


def test_postmark(tmp_path: Path, store_url: str, store: sa.Engine) -> None:
    site = serve(tmp_path, store_url, "postmark")
    try:
        url = site.url + "/webhooks/postmark"
        hard = {"RecordType": "Bounce", "ID": 4323372036854775807, "Type": "HardBounce", "TypeCode": 1,
                "Email": "hard@example.org",
                "Description": "The server was unable to deliver your message", "MessageStream": "broadcast"}
        assert httpx.post(url, json=hard).status_code == 401
        assert httpx.post(url, json=hard, auth=("hooks", "wrong")).status_code == 403
        assert_untouched(store)
        user, password = POSTMARK_CREDENTIALS.split(":")
        for event in (hard,
                      {"RecordType": "Bounce", "ID": 2, "Type": "SoftBounce", "TypeCode": 4096,
                       "Email": "soft@example.org"},
                      {"RecordType": "Bounce", "ID": 3, "Type": "Transient", "TypeCode": 2, "Email": "soft@example.org"},
                      {"RecordType": "SpamComplaint", "ID": 4, "Type": "SpamComplaint", "TypeCode": 512,
                       "Email": "angry@example.org"},
                      {"RecordType": "Delivery", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
                       "DeliveredAt": "2026-11-30T05:00:00Z", "Recipient": "fine@example.org"}):
            response = httpx.post(url, json=event, auth=(user, password))
            assert response.status_code == 200, response.text
        assert httpx.post(url, content=b"{not json", auth=(user, password)).status_code == 400
        assert httpx.post(site.url + "/webhooks/fax", json=hard, auth=(user, password)).status_code == 404
    finally:
        site.stop()
    statuses, reasons, events = state(store)
    assert statuses == EXPECTED_STATUSES and reasons == EXPECTED_REASONS
    assert [k for k, _, _ in events] == ["hard_bounce", "soft_bounce", "soft_bounce", "complaint", "delivery"]
