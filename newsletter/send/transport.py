"""The one small interface every transport implements, and the `outbox` transport.

A transport takes envelopes (a recipient and either the complete RFC 5322 bytes of their copy,
or, for HTTP providers that personalise server-side, the mailing's template and the recipient's
values) and says, per envelope, whether the server or API accepted it. It knows nothing of
editions, mailings or subscribers.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from newsletter.digest.message import MessageTemplate
from newsletter.errors import TransportError


@dataclass(frozen=True)
class Envelope:
    sender: str  # envelope sender (bounce address)
    recipient: str
    message: bytes = b""  # the complete message, headers and body (message transports)
    key: str = ""  # the caller's id for this envelope (e.g. the delivery id), echoed in results
    name: str = ""  # the recipient's display name
    # Personalising transports (`Transport.personalises`): template shared by the batch,
    # this recipient's values by placeholder name (`placeholders.fill`) and headers (e.g. their
    # List-Unsubscribe).
    template: MessageTemplate | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    # The message as SMTP's DATA carries it (dot-stuffed, ending in the lone "."), for a transport
    # that says `takes_data`; then `message` may be empty. Stuffing a 40 KB copy again for every
    # reader costs more than joining pieces the builder stuffed once per mailing.
    data: bytes = b""


@dataclass(frozen=True)
class Result:
    key: str
    recipient: str
    error: TransportError | None = None  # None: accepted
    provider_message_id: str | None = None
    # The receiving side said the address does not exist or must not be mailed again.
    hard_bounce: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


class Transport(Protocol):
    name: str
    # True: envelopes carry template + variables and the provider builds each copy;
    # False: envelopes carry complete message bytes.
    personalises: bool
    # Most envelopes one `send` call takes; a crash can leave at most one such call in doubt.
    batch_limit: int

    def send(self, envelopes: Sequence[Envelope]) -> list[Result]:
        """Hand envelopes over; one Result per envelope, in order. Raises TransportError only
        when the whole batch failed before any envelope could be judged (connection refused)."""

    def close(self) -> None: ...


def envelope_sender(sender_header: str) -> str:
    """The bare address of a From-style header value."""
    return parseaddr(sender_header)[1]


class OutboxTransport:
    """Writes each message as an `.eml` file: the embedded default, no server needed.

    File names derive from the envelope key and recipient, and files are written atomically
    (temporary name, then rename), so a resend after a crash rewrites rather than duplicates.
    """

    name = "outbox"
    personalises = False
    batch_limit = 100

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransportError(f"outbox: cannot create {folder}: {exc.strerror}", permanent=True) from exc

    def _path(self, envelope: Envelope) -> Path:
        digest = hashlib.sha256(f"{envelope.key}\0{envelope.recipient}".encode()).hexdigest()[:16]
        prefix = "".join(c if c.isalnum() or c in "-_" else "-" for c in envelope.key)[:40] or "message"
        return self.folder / f"{prefix}-{digest}.eml"

    def send(self, envelopes: Sequence[Envelope]) -> list[Result]:
        results = []
        for envelope in envelopes:
            path = self._path(envelope)
            tmp = path.with_suffix(".tmp")
            try:
                with open(tmp, "wb") as f:
                    f.write(envelope.message)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except OSError as exc:
                results.append(Result(envelope.key, envelope.recipient,
                                      TransportError(f"outbox: cannot write {path}: {exc.strerror}")))
                continue
            results.append(Result(envelope.key, envelope.recipient, provider_message_id=path.name))
        return results

    def close(self) -> None:
        pass
