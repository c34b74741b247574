"""Bounce and complaint webhooks from Postmark, SendGrid and Mailgun, signatures verified.

The secret comes from the environment variable `[transport].webhook_secret_env`; what it
holds depends on the provider:
- mailgun: the HTTP webhook signing key (HMAC-SHA256 of timestamp + token);
- sendgrid: the signed event webhook's public key (base64 DER, as SendGrid shows it, or PEM);
- postmark: `user:password`, the HTTP basic auth credentials set in the webhook's URL.
Verification and parsing are pure functions; `handle` applies the events to the store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from newsletter.config import Config
from newsletter.subscribers.suppression import BounceKind, record_bounce, record_event, suppress

log = logging.getLogger(__name__)
PROVIDERS = ("postmark", "sendgrid", "mailgun")
# Signed requests older (or newer) than this are refused, so a captured one cannot be replayed later.
MAX_SKEW_SECONDS = 15 * 60


class WebhookRejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ProviderEvent:
    # hard_bounce | soft_bounce | complaint | unsubscribe, or the provider's own name for
    # events that are only recorded (delivered, deferred, ...)
    kind: str
    email: str
    detail: dict[str, Any]


def _fresh(timestamp: str, now: float) -> None:
    try:
        when = float(timestamp)
    except ValueError:
        raise WebhookRejected(403, "signature timestamp is not a number") from None
    if abs(now - when) > MAX_SKEW_SECONDS:
        raise WebhookRejected(403, "signature timestamp is too old or in the future")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected(400, "body is not JSON") from None


def verify_mailgun(secret: str, payload: Any, now: float) -> None:
    signature = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(signature, dict) or not all(isinstance(signature.get(k), str)
                                                  for k in ("timestamp", "token", "signature")):
        raise WebhookRejected(401, "no Mailgun signature (signature.timestamp, token, signature)")
    expected = hmac.new(secret.encode(), (signature["timestamp"] + signature["token"]).encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature["signature"]):
        raise WebhookRejected(403, "Mailgun signature does not match")
    _fresh(signature["timestamp"], now)


def verify_sendgrid(public_key: str, headers: Mapping[str, str], body: bytes, now: float) -> None:
    signature = headers.get("x-twilio-email-event-webhook-signature", "")
    timestamp = headers.get("x-twilio-email-event-webhook-timestamp", "")
    if not signature or not timestamp:
        raise WebhookRejected(401, "no SendGrid signature headers")
    try:
        if public_key.lstrip().startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(public_key.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(public_key))
    except (ValueError, binascii.Error) as exc:
        raise WebhookRejected(403, "the configured SendGrid public key cannot be read") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise WebhookRejected(403, "the configured SendGrid public key is not an ECDSA key")
    try:
        key.verify(base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise WebhookRejected(403, "SendGrid signature does not match") from None
    _fresh(timestamp, now)


def verify_postmark(credentials: str, headers: Mapping[str, str]) -> None:
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise WebhookRejected(401, "no HTTP basic auth credentials")
    try:
        given = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise WebhookRejected(401, "malformed HTTP basic auth credentials") from None
    if not hmac.compare_digest(given.encode(), credentials.encode()):
        raise WebhookRejected(403, "HTTP basic auth credentials do not match")


_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
_POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError", "Blocked"}


def parse_postmark(payload: Any) -> list[ProviderEvent]:
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "expected one JSON object")
    record, kind = payload.get("RecordType", ""), payload.get("Type", "")
    email = str(payload.get("Email") or payload.get("Recipient") or "")
    if record == "SpamComplaint" or kind == "SpamComplaint":
        event = "complaint"
    elif record == "Bounce" and kind in _POSTMARK_HARD:
        event = "hard_bounce"
    elif record == "Bounce" and kind in _POSTMARK_SOFT:
        event = "soft_bounce"
    elif record == "SubscriptionChange" and payload.get("SuppressSending") is True:
        event = "unsubscribe"
    else:
        event = f"{record or 'unknown'}:{kind}".lower().rstrip(":")
    return [ProviderEvent(event, email, payload)]


def parse_sendgrid(payload: Any) -> list[ProviderEvent]:
    if not isinstance(payload, list):
        raise WebhookRejected(400, "expected a JSON array of events")
    events = []
    for item in payload:
        if not isinstance(item, dict):
            raise WebhookRejected(400, "expected every event to be a JSON object")
        name = str(item.get("event", ""))
        if name == "bounce":
            event = "soft_bounce" if item.get("type") == "blocked" else "hard_bounce"
        elif name == "spamreport":
            event = "complaint"
        elif name in ("unsubscribe", "group_unsubscribe"):
            event = "unsubscribe"
        else:
            event = name or "unknown"
        events.append(ProviderEvent(event, str(item.get("email", "")), item))
    return events


def parse_mailgun(payload: Any) -> list[ProviderEvent]:
    data = payload.get("event-data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise WebhookRejected(400, "expected an 'event-data' object")
    name = str(data.get("event", ""))
    if name == "failed":
        event = "hard_bounce" if data.get("severity") == "permanent" else "soft_bounce"
    elif name == "complained":
        event = "complaint"
    elif name == "unsubscribed":
        event = "unsubscribe"
    else:
        event = name or "unknown"
    return [ProviderEvent(event, str(data.get("recipient", "")), data)]


def verified_events(provider: str, secret: str, headers: Mapping[str, str], body: bytes,
                    now: float) -> tuple[list[ProviderEvent], str | None]:
    """The events in a webhook call after its signature checked out, and the signature (None for
    Postmark, which signs nothing); WebhookRejected otherwise."""
    if provider == "postmark":
        verify_postmark(secret, headers)
        return parse_postmark(_json(body)), None
    if provider == "sendgrid":
        verify_sendgrid(secret, headers, body, now)
        return parse_sendgrid(_json(body)), headers["x-twilio-email-event-webhook-signature"]
    payload = _json(body)
    verify_mailgun(secret, payload, now)
    return parse_mailgun(payload), payload["signature"]["signature"]


class SeenSignatures:
    """Signatures already applied within the freshness window, so a replayed or retried call
    within it is answered without counting its bounces twice (kept in this process only)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def __contains__(self, signature: str) -> bool:
        with self._lock:
            return signature in self._seen

    def add(self, signature: str, now: float) -> None:
        with self._lock:
            self._seen[signature] = now
            if len(self._seen) > 10_000:
                horizon = now - 2 * MAX_SKEW_SECONDS
                self._seen = {s: t for s, t in self._seen.items() if t > horizon}


_BOUNCE_KINDS: dict[str, BounceKind] = {"hard_bounce": "hard", "soft_bounce": "soft", "complaint": "complaint"}


def apply(conn: sa.Connection, provider: str, events: list[ProviderEvent], soft_limit: int) -> int:
    """Record every event; suppress on hard bounces, complaints, unsubscribes. Returns how many suppressed."""
    suppressed = 0
    for event in events:
        if not event.email:
            record_event(conn, event.kind, None, provider, event.detail)
        elif event.kind in _BOUNCE_KINDS:
            suppressed += record_bounce(conn, event.email, _BOUNCE_KINDS[event.kind], provider, event.detail,
                                        soft_limit)
        elif event.kind == "unsubscribe":
            record_event(conn, "unsubscribe", event.email, provider, event.detail)
            suppress(conn, event.email, "unsubscribed", f"unsubscribed at {provider}")
            suppressed += 1
        else:
            record_event(conn, event.kind, event.email, provider, event.detail)
    return suppressed


class Webhooks:
    def __init__(self, config: Config, engine: sa.Engine) -> None:
        self.config = config
        self.engine = engine
        self.seen = SeenSignatures()

    async def handle(self, request: Request) -> JSONResponse:
        provider = request.path_params["provider"]
        if provider not in PROVIDERS:
            return JSONResponse({"error": f"unknown provider; expected one of {', '.join(PROVIDERS)}"},
                                status_code=404)
        env_name = self.config.transport.webhook_secret_env
        secret = os.environ.get(env_name, "") if env_name else ""
        if not secret:
            log.error("webhook from %s refused: transport.webhook_secret_env names no set variable", provider)
            return JSONResponse({"error": "webhooks are not configured"}, status_code=403)
        body = await request.body()
        now = time.time()
        try:
            events, signature = verified_events(provider, secret, request.headers, body, now)
        except WebhookRejected as exc:
            log.warning("webhook from %s refused: %s", provider, exc)
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        if signature is not None and signature in self.seen:
            return JSONResponse({"recorded": 0, "suppressed": 0, "duplicate": True})

        def work() -> int:
            with self.engine.begin() as conn:
                return apply(conn, provider, events, self.config.transport.soft_bounce_limit)

        suppressed = await run_in_threadpool(work)
        if signature is not None:
            self.seen.add(signature, now)
        return JSONResponse({"recorded": len(events), "suppressed": suppressed})
