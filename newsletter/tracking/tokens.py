"""Signed, opaque tokens for `/r/{token}` and `/o/{token}`: they name a mailing and one of its
links (link 0: the open pixel), never a reader, so every copy of a mailing carries the same ones.

The construction is `newsletter.tokens`' (a synthetic IV: an HMAC tag over the payload, the
payload encrypted with a keystream derived from the tag), with its own purpose so a click
token can never pass for a subscriber's link or the other way round.
"""

from __future__ import annotations

import base64
import hmac
import struct

from newsletter.errors import NewsletterError

_TAG = 12
_PAYLOAD = struct.Struct(">IH")  # mailing id, link number
_LENGTH = len(base64.urlsafe_b64encode(bytes(_TAG + _PAYLOAD.size)).rstrip(b"="))
OPEN = 0  # the link number of a mailing's open pixel
MAX_LINKS = 0xFFFF


class TrackingTokenError(NewsletterError):
    """The token is malformed, forged, or signed with another key."""


def _tag(key: bytes, payload: bytes) -> bytes:
    return hmac.digest(key, b"tag\0track\0" + payload, "sha256")[:_TAG]


def _xor(payload: bytes, key: bytes, tag: bytes) -> bytes:
    stream = hmac.digest(key, b"enc\0track\0" + tag, "sha256")[: len(payload)]
    return bytes(a ^ b for a, b in zip(payload, stream))


def make(key: bytes, mailing_id: int, link_no: int) -> str:
    payload = _PAYLOAD.pack(mailing_id, link_no)
    tag = _tag(key, payload)
    return base64.urlsafe_b64encode(tag + _xor(payload, key, tag)).rstrip(b"=").decode()


def read(key: bytes, token: str) -> tuple[int, int]:
    """(mailing id, link number) of a valid token; TrackingTokenError otherwise."""
    if len(token) != _LENGTH:
        raise TrackingTokenError("the link is incomplete or damaged")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError) as exc:
        raise TrackingTokenError("the link is incomplete or damaged") from exc
    # Only the spelling `make` writes: no second encoding of the same bytes is accepted.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != token:
        raise TrackingTokenError("the link is incomplete or damaged")
    tag, ciphertext = raw[:_TAG], raw[_TAG:]
    payload = _xor(ciphertext, key, tag)
    if not hmac.compare_digest(tag, _tag(key, payload)):
        raise TrackingTokenError("the link is not valid")
    mailing_id, link_no = _PAYLOAD.unpack(payload)
    return mailing_id, link_no
