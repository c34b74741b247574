"""VERP: an envelope sender per delivery, so a bounce names its delivery even when it quotes nothing.

The address is `{local}+{token}@{domain}` built from `[bounces].return_path`. The token is the
delivery id and an HMAC over it, in lower-case base32: mail systems may fold the case of a local
part, and `+` tags survive every relay we know of. A token that does not verify names nothing.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import struct

_MAC = 8
_ID = struct.Struct(">Q")
_PURPOSE = b"verp\0"
_TOKEN = re.compile(r"^[a-z2-7]{26}$")


def _mac(key: bytes, packed: bytes) -> bytes:
    return hmac.digest(key, _PURPOSE + packed, "sha256")[:_MAC]


def token(key: bytes, delivery_id: int) -> str:
    packed = _ID.pack(delivery_id)
    return base64.b32encode(packed + _mac(key, packed)).decode().rstrip("=").lower()


def address(key: bytes, return_path: str, delivery_id: int) -> str:
    """The envelope sender of one delivery's copy."""
    local, _, domain = return_path.rpartition("@")
    return f"{local}+{token(key, delivery_id)}@{domain}"


def delivery_id(key: bytes, return_path: str, candidate: str) -> int | None:
    """The delivery a VERP address names, or None when `candidate` is not one of ours or is forged."""
    local, _, domain = return_path.rpartition("@")
    cand_local, _, cand_domain = candidate.strip().strip("<>").rpartition("@")
    if cand_domain.lower() != domain.lower():
        return None
    base, plus, tag = cand_local.partition("+")
    if not plus or base.lower() != local.lower():
        return None
    tag = tag.lower()
    if not _TOKEN.match(tag):
        return None
    try:
        raw = base64.b32decode(tag.upper() + "=" * 6)
    except binascii.Error:
        return None
    packed, mac = raw[:_ID.size], raw[_ID.size:]
    if not hmac.compare_digest(mac, _mac(key, packed)):
        return None
    return _ID.unpack(packed)[0]
