"""Bounce and complaint webhooks from Postmark, SendGrid and Mailgun, signatures verified.

Each provider has its own section and its own secret (`[webhooks.postmark]`,
`[webhooks.sendgrid]`, `[webhooks.mailgun]`); a provider's route answers 404 unless its section
is configured, and no secret ever opens another provider's route:
- mailgun: the HTTP webhook signing key (HMAC-SHA256 of timestamp + token);
- sendgrid: the signed event webhook's public key (ECDSA, base64 DER or PEM), used only to verify;
- postmark: the HTTP basic auth user name and password set in the webhook's URL.
Each event is applied once, by the provider's own identity for it (Mailgun's token, SendGrid's
`sg_event_id`, Postmark's record type and id), recorded in the transaction that applies it.
Verification and parsing are pure functions; `Webhooks.handle` applies the events to the store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Mapping

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.dialects import postgresql, sqlite
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from newsletter.config import Config
from newsletter.errors import ConfigError
from newsletter.store import schema, utcnow
from newsletter.subscribers.suppression import BounceKind, record_bounce, record_event, suppress

log = logging.getLogger(__name__)
PROVIDERS = ("postmark", "sendgrid", "mailgun")
# Signed requests older (or newer) than this are refused, so a captured one cannot be replayed later.
MAX_SKEW_SECONDS = 15 * 60
# Provider payloads are a few levels deep; anything deeper is not theirs.
MAX_DEPTH = 16
MAX_EVENTS = 10_000
_KEY_CHARS = 255


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
    # The provider's own identity for this event: the same event always has the same one.
    identity: str


def _fresh(timestamp: str, now: float) -> None:
    try:
        when = float(timestamp)
    except ValueError:
        raise WebhookRejected(403, "signature timestamp is not a number") from None
    if not abs(now - when) <= MAX_SKEW_SECONDS:  # `not <=` also refuses NaN
        raise WebhookRejected(403, "signature timestamp is too old or in the future")


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _json(body: bytes) -> Any:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected(400, "body is not JSON") from None
    except RecursionError:
        raise WebhookRejected(400, f"body is nested deeper than {MAX_DEPTH} levels") from None
    if _depth(payload) > MAX_DEPTH:
        raise WebhookRejected(400, f"body is nested deeper than {MAX_DEPTH} levels")
    return payload


def _identity(*parts: Any) -> str:
    text = ":".join(str(p) for p in parts)
    if len(text) > _KEY_CHARS:
        return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return text


def verify_mailgun(signing_key: str, payload: Any, now: float) -> str:
    """Check Mailgun's signature; returns its token, which identifies the call's event."""
    signature = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(signature, dict) or not all(isinstance(signature.get(k), str)
                                                  for k in ("timestamp", "token", "signature")):
        raise WebhookRejected(401, "no Mailgun signature (signature.timestamp, token, signature)")
    expected = hmac.new(signing_key.encode(), (signature["timestamp"] + signature["token"]).encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature["signature"].encode("utf-8", "replace")):
        raise WebhookRejected(403, "Mailgun signature does not match")
    _fresh(signature["timestamp"], now)
    return signature["token"]


def load_sendgrid_key(text: str, env_name: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key as SendGrid shows it (base64 DER) or PEM; ConfigError otherwise."""
    try:
        if text.lstrip().startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        raise ConfigError(f"environment variable {env_name} does not hold a public key (expected SendGrid's "
                          "signed event webhook verification key, base64 DER as SendGrid shows it, or PEM)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError(f"environment variable {env_name} holds a public key that is not an ECDSA key; "
                          "expected SendGrid's signed event webhook verification key")
    return key


def verify_sendgrid(key: ec.EllipticCurvePublicKey, headers: Mapping[str, str], body: bytes, now: float) -> None:
    signature = headers.get("x-twilio-email-event-webhook-signature", "")
    timestamp = headers.get("x-twilio-email-event-webhook-timestamp", "")
    if not signature or not timestamp:
        raise WebhookRejected(401, "no SendGrid signature headers")
    try:
        key.verify(base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise WebhookRejected(403, "SendGrid signature does not match") from None
    _fresh(timestamp, now)


def verify_postmark(username: str, password: str, headers: Mapping[str, str]) -> None:
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise WebhookRejected(401, "no HTTP basic auth credentials")
    try:
        given_user, colon, given_password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        raise WebhookRejected(401, "malformed HTTP basic auth credentials") from None
    # Both compared, always: which half was wrong is not told by the time it takes.
    user_ok = hmac.compare_digest(given_user, username.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    if not (colon and user_ok and password_ok):
        raise WebhookRejected(403, "HTTP basic auth credentials do not match")


_POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
_POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError", "Blocked"}
# Postmark record types without an ID: the message, recipient and time of the event identify them.
_POSTMARK_TIMES = ("ChangedAt", "DeliveredAt", "ReceivedAt", "BouncedAt")


def parse_postmark(payload: Any) -> list[ProviderEvent]:
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "expected one JSON object")
    record, kind = str(payload.get("RecordType", "")), str(payload.get("Type", ""))
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
    if payload.get("ID") not in (None, ""):
        identity = _identity(record, payload["ID"])
    elif payload.get("MessageID"):
        when = next((payload[k] for k in _POSTMARK_TIMES if payload.get(k)), "")
        identity = _identity(record, payload["MessageID"], email, when)
    else:
        raise WebhookRejected(400, "a Postmark event without ID or MessageID cannot be told from a replay")
    return [ProviderEvent(event, email, payload, identity)]


def parse_sendgrid(payload: Any) -> list[ProviderEvent]:
    if not isinstance(payload, list):
        raise WebhookRejected(400, "expected a JSON array of events")
    if len(payload) > MAX_EVENTS:
        raise WebhookRejected(413, f"more than {MAX_EVENTS} events in one call")
    events = []
    for item in payload:
        if not isinstance(item, dict):
            raise WebhookRejected(400, "expected every event to be a JSON object")
        if not isinstance(item.get("sg_event_id"), str) or not item["sg_event_id"]:
            raise WebhookRejected(400, "a SendGrid event without sg_event_id cannot be told from a replay")
        name = str(item.get("event", ""))
        if name == "bounce":
            event = "soft_bounce" if item.get("type") == "blocked" else "hard_bounce"
        elif name == "spamreport":
            event = "complaint"
        elif name in ("unsubscribe", "group_unsubscribe"):
            event = "unsubscribe"
        else:
            event = name or "unknown"
        events.append(ProviderEvent(event, str(item.get("email", "")), item, _identity(item["sg_event_id"])))
    return events


def parse_mailgun(payload: Any, token: str) -> list[ProviderEvent]:
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
    # The token is what Mailgun signs, fresh for every call: a re-signed or concurrent copy carries it too.
    return [ProviderEvent(event, str(data.get("recipient", "")), data, _identity(token))]


class Verifier:
    """One provider's configured secret, read from its own environment variables."""

    def __init__(self, provider: str, config: Config) -> None:
        self.provider = provider
        section = getattr(config.webhooks, provider)
        if provider == "postmark":
            self.username = _required_env(section.username_env, "postmark", "basic auth user name")
            self.password = _required_env(section.password_env, "postmark", "basic auth password")
        elif provider == "sendgrid":
            self.key = load_sendgrid_key(_required_env(section.public_key_env, "sendgrid", "verification key"),
                                         section.public_key_env)
        else:
            self.signing_key = _required_env(section.signing_key_env, "mailgun", "signing key")

    def events(self, headers: Mapping[str, str], body: bytes, now: float) -> list[ProviderEvent]:
        """The events in a webhook call after its signature checked out; WebhookRejected otherwise."""
        if self.provider == "postmark":
            verify_postmark(self.username, self.password, headers)
            return parse_postmark(_json(body))
        if self.provider == "sendgrid":
            verify_sendgrid(self.key, headers, body, now)
            return parse_sendgrid(_json(body))
        payload = _json(body)
        token = verify_mailgun(self.signing_key, payload, now)
        return parse_mailgun(payload, token)


def _required_env(env_name: str, provider: str, what: str) -> str:
    value = os.environ.get(env_name, "")
    if not value:
        raise ConfigError(f"environment variable {env_name} is not set; it holds the {provider} webhook's {what} "
                          f"([webhooks.{provider}])")
    return value


_BOUNCE_KINDS: dict[str, BounceKind] = {"hard_bounce": "hard", "soft_bounce": "soft", "complaint": "complaint"}


def first_time(conn: sa.Connection, provider: str, identity: str) -> bool:
    """Claim an event's identity; False when it was applied before (or is being applied right now:
    the unique key makes a concurrent copy wait for the first and then find it)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    inserted = conn.execute(dialect.insert(schema.webhook_events).values(
        provider=provider, event_key=identity, received_at=utcnow()).on_conflict_do_nothing()
        .returning(schema.webhook_events.c.event_key)).first()
    return inserted is not None


@dataclass
class Applied:
    recorded: int = 0
    duplicates: int = 0
    suppressed: int = 0


def apply(conn: sa.Connection, provider: str, events: list[ProviderEvent], soft_limit: int) -> Applied:
    """Record every new event; suppress on hard bounces, complaints, unsubscribes. Events seen
    before are skipped. Call inside one transaction, so an event and its identity commit together."""
    applied = Applied()
    for event in events:
        if not first_time(conn, provider, event.identity):
            applied.duplicates += 1
            continue
        applied.recorded += 1
        if not event.email:
            record_event(conn, event.kind, None, provider, event.detail)
        elif event.kind in _BOUNCE_KINDS:
            applied.suppressed += record_bounce(conn, event.email, _BOUNCE_KINDS[event.kind], provider,
                                                event.detail, soft_limit)
        elif event.kind == "unsubscribe":
            record_event(conn, "unsubscribe", event.email, provider, event.detail)
            suppress(conn, event.email, "unsubscribed", f"unsubscribed at {provider}")
            applied.suppressed += 1
        else:
            record_event(conn, event.kind, event.email, provider, event.detail)
    return applied


class Webhooks:
    """The `/webhooks/{provider}` route. Built at start: a configured provider whose variables
    are missing stops `serve` with a ConfigError rather than refusing every call later."""

    def __init__(self, config: Config, engine: sa.Engine) -> None:
        self.config = config
        self.engine = engine
        self.verifiers = {p: Verifier(p, config) for p in PROVIDERS if getattr(config.webhooks, p) is not None}

    async def handle(self, request: Request) -> JSONResponse:
        verifier = self.verifiers.get(request.path_params["provider"])
        if verifier is None:
            return JSONResponse({"error": "no webhook here"}, status_code=404)
        provider = verifier.provider
        body = await request.body()
        try:
            events = verifier.events(request.headers, body, time.time())
        except WebhookRejected as exc:
            log.warning("webhook from %s refused: %s", provider, exc)
            return JSONResponse({"error": str(exc)}, status_code=exc.status)

        def work() -> Applied:
            with self.engine.begin() as conn:
                return apply(conn, provider, events, self.config.transport.soft_bounce_limit)

        applied = await run_in_threadpool(work)
        return JSONResponse({"recorded": applied.recorded, "duplicates": applied.duplicates,
                             "suppressed": applied.suppressed})
