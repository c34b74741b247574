"""Opaque, HMAC-signed tokens bound to one id (a subscriber, a subscribe request, a data link) and one purpose.

A token is `tag || ciphertext` in URL-safe base64. The tag is an HMAC-SHA256 over the
purpose, subscriber id and expiry; the id and expiry are encrypted with a keystream
derived from the tag (a synthetic-IV construction), so the token reveals nothing and is
deterministic: a mailing renders one unsubscribe link per subscriber, stable across resends.
"""

from __future__ import annotations

import base64
import hmac
import struct
import time

from newsletter.errors import NewsletterError

# `subscribe_request` names a subscribe request (not a subscriber) and `data_link` a single-use
# data link: new names, so a token made under the old meaning can never be read under the new one.
PURPOSES = ("unsubscribe", "preferences", "subscribe_request", "archive", "data_link")
_TAG = 12
_PAYLOAD = struct.Struct(">QQ")  # subscriber id, expiry (unix seconds; 0 = never)


class TokenError(NewsletterError):
    """The token is malformed, forged, for another purpose, or expired."""


# hmac.digest and int XOR: tokens are made twice per message copy, on the sender's hot path.
def _tag(key: bytes, purpose: str, payload: bytes) -> bytes:
    return hmac.digest(key, b"tag\0" + purpose.encode() + b"\0" + payload, "sha256")[:_TAG]


def _keystream(key: bytes, tag: bytes) -> bytes:
    return hmac.digest(key, b"enc\0" + tag, "sha256")[: _PAYLOAD.size]


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def make(key: bytes, purpose: str, subscriber_id: int, expires_at: int = 0) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    payload = _PAYLOAD.pack(subscriber_id, expires_at)
    tag = _tag(key, purpose, payload)
    raw = tag + _xor(payload, _keystream(key, tag))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def read(key: bytes, purpose: str, token: str, *, now: float | None = None) -> int:
    """The subscriber id in a valid token for `purpose`; TokenError otherwise."""
    if not token or len(token) > 64:
        raise TokenError("the link is incomplete or damaged")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError) as exc:
        raise TokenError("the link is incomplete or damaged") from exc
    # The last character carries unused bits: refuse every spelling but the one `make` writes.
    if len(raw) != _TAG + _PAYLOAD.size or base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != token:
        raise TokenError("the link is incomplete or damaged")
    tag, ciphertext = raw[:_TAG], raw[_TAG:]
    payload = _xor(ciphertext, _keystream(key, tag))
    if not hmac.compare_digest(tag, _tag(key, purpose, payload)):
        raise TokenError("the link is not valid")
    subscriber_id, expires_at = _PAYLOAD.unpack(payload)
    if expires_at and (now if now is not None else time.time()) > expires_at:
        raise TokenError("the link has expired")
    return subscriber_id
