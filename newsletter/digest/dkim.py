"""DKIM signatures (RFC 6376) for the messages we build, with OpenSSL doing the arithmetic.

dkimpy signs in pure Python (about 7 ms a copy for RSA-2048); here a key is loaded once per
process (`load_key` keeps what it loaded), the header list and tags are prepared once per mailing,
and each copy costs one SHA-256 of its body, one of its signed headers and one RSA (or Ed25519,
RFC 8463) signature through `cryptography`. Canonicalisation is relaxed for headers and simple for
the body (dkimpy's default, which the verifiers we test against accept). Our own builder writes
the messages, so parsing can assume what it writes: CRLF line ends, a blank line between headers
and body.

`sign` takes any such message. A builder that knows its headers in advance asks `header_plan` once
for the canonical form of the fixed ones, fills in the few that change per copy (`relaxed_field`),
hashes the body as it joins it, and calls `sign_canonical`: the same signature without parsing
or canonicalising the common headers again for every copy.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from dataclasses import dataclass

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

RSA_SHA256 = "rsa-sha256"
ED25519_SHA256 = "ed25519-sha256"
MIN_RSA_BITS = 1024
_WSP = re.compile(rb"[ \t]+")
_CRLF = b"\r\n"


class DkimKeyError(ValueError):
    """The key cannot sign DKIM signatures (not a private key in PEM, wrong type, too short)."""


@dataclass(frozen=True)
class SigningKey:
    algorithm: str  # RSA_SHA256 or ED25519_SHA256
    selector: str
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@functools.lru_cache(maxsize=8)
def load_key(pem: bytes, algorithm: str, selector: str) -> SigningKey:
    """A private key in PEM that signs `algorithm`; DkimKeyError with the reason otherwise.

    Kept once loaded: a worker builds a message factory per copy of a mailing (per-reader copies
    make hundreds), and parsing and checking an RSA key costs milliseconds each time.
    """
    # `cryptography` (9 MB resident) is loaded with the first key: a send worker that does not sign
    # never carries it.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise DkimKeyError(f"not an unencrypted private key in PEM ({exc})") from exc
    if algorithm == RSA_SHA256:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise DkimKeyError(f"expected an RSA key for {RSA_SHA256}, found {type(key).__name__}")
        if key.key_size < MIN_RSA_BITS:
            raise DkimKeyError(f"an RSA key of {key.key_size} bits; expected {MIN_RSA_BITS} or more")
    elif algorithm == ED25519_SHA256:
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise DkimKeyError(f"expected an Ed25519 key for {ED25519_SHA256}, found {type(key).__name__}")
    else:
        raise DkimKeyError(f"unknown algorithm {algorithm!r}")
    return SigningKey(algorithm, selector, key)


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """RFC 6376 section 3.4.2: lower-case name, unfolded value with runs of whitespace as one space."""
    value = _WSP.sub(b" ", value.replace(_CRLF, b"")).strip(b" ")
    return name.strip().lower() + b":" + value + _CRLF


def relaxed_field(field: bytes) -> bytes:
    """`relaxed_header` of one whole field as a message carries it: b"Name: value\\r\\n", maybe folded."""
    name, _, value = field[:-2].partition(b":")
    return relaxed_header(name, value)


def simple_body(body: bytes) -> bytes:
    """RFC 6376 section 3.4.3: the body with its trailing empty lines removed, ending in one CRLF."""
    end = len(body)
    while body.endswith(_CRLF, 0, end) and body.endswith(_CRLF * 2, 0, end):
        end -= 2
    body = body[:end]
    return body if body.endswith(_CRLF) else body + _CRLF


def header_fields(block: bytes) -> list[tuple[bytes, bytes]]:
    """(lower-case name, raw value with its folding) of each header field, in order."""
    fields: list[tuple[bytes, bytes]] = []
    for line in block.split(_CRLF):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + _CRLF + line)
        elif line:
            name, _, value = line.partition(b":")
            fields.append((name.strip().lower(), value))
    return fields


def _fold(value: str, width: int = 72) -> str:
    return "\r\n ".join(value[i:i + width] for i in range(0, len(value), width))


class Signer:
    """Signs messages of one mailing: `sign(message)` returns the DKIM-Signature fields to prepend."""

    def __init__(self, domain: str, keys: list[SigningKey], header_names: list[bytes]) -> None:
        self.domain = domain
        self.keys = keys
        self.names = [n.lower() for n in header_names]
        self._h = b":".join(self.names).decode()
        if any(k.algorithm == RSA_SHA256 for k in keys):
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding

            self._rsa_scheme = (padding.PKCS1v15(), hashes.SHA256())

    def sign(self, message: bytes, now: int | None = None) -> bytes:
        head, _, body = message.partition(_CRLF * 2)
        plan = self.header_plan(header_fields(head + _CRLF))
        return self.sign_canonical(b"".join(plan), hashlib.sha256(simple_body(body)).digest(), now)  # type: ignore[arg-type]

    def sign_canonical(self, canonical: bytes, body_digest: bytes, now: int | None = None) -> bytes:
        """The DKIM-Signature fields for a message whose signed headers, in relaxed form and h=
        order, are `canonical` (`header_plan`), and whose simple-canonical body has SHA-256 `body_digest`."""
        body_hash = base64.b64encode(body_digest).decode()
        stamp = int(time.time()) if now is None else now
        out = []
        for key in self.keys:
            tags = (f"v=1; a={key.algorithm}; c=relaxed/simple; d={self.domain}; s={key.selector};\r\n"
                    f" t={stamp}; h={self._h};\r\n bh={body_hash};\r\n b=")
            data = canonical + relaxed_header(b"DKIM-Signature", tags.encode())[:-2]
            if key.algorithm == RSA_SHA256:
                signature = key.key.sign(data, *self._rsa_scheme)  # type: ignore[call-arg, union-attr]
            else:
                signature = key.key.sign(hashlib.sha256(data).digest())  # type: ignore[call-arg]
            out.append(f"DKIM-Signature: {tags}{_fold(base64.b64encode(signature).decode())}\r\n".encode())
        return b"".join(out)

    def header_plan(self, fields: list[tuple[bytes, bytes | int]]) -> list[bytes | int]:
        """The h= fields of a message whose header `fields` are (lower-case name, raw value) in order,
        canonical: each name takes its instances from the bottom up, and a name listed more often
        than it occurs (over-signing) contributes nothing, so an added copy breaks the signature.

        A value may be an int instead, a slot for a field filled per copy: the plan keeps it, and
        the caller puts `relaxed_field` of that copy's field in its place. Adjacent bytes are joined.
        """
        remaining: dict[bytes, list[bytes | int]] = {}
        for name, value in fields:
            remaining.setdefault(name, []).append(value)
        plan: list[bytes | int] = []
        for name in self.names:
            values = remaining.get(name)
            if not values:
                continue
            value = values.pop()
            if isinstance(value, int):
                plan.append(value)
            elif plan and isinstance(plan[-1], bytes):
                plan[-1] += relaxed_header(name, value)
            else:
                plan.append(relaxed_header(name, value))
        return plan
