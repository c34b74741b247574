"""What a message in the bounce mailbox says: a bounce, a complaint, an auto-reply, or none of these.

Pure: bytes in, a `Report` out. In order: RFC 3464 delivery status notifications, RFC 5965 (ARF)
feedback reports, the non-standard bounces that `flufl.bounce` (Mailman's detectors) knows, and
RFC 3834 auto-replies. Anything else is UNKNOWN and left for a person. Bounces carry Auto-Submitted
too, so the reports are recognised before the auto-reply headers are looked at.
"""

from __future__ import annotations

import email
import hashlib
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser
from email.policy import compat32
from email.utils import getaddresses
from enum import StrEnum

from flufl.bounce import all_failures

# A report quoting a whole 40 KB digest is well under this; a bigger message is not a bounce of ours.
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
# Headers that may carry the address the message was delivered to: our VERP address on a bounce.
_DELIVERED_TO = ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
# RFC 5965 feedback types that mean "this reader did not want this mail".
_COMPLAINT_TYPES = frozenset({"abuse", "fraud"})


class Kind(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    COMPLAINT = "complaint"
    AUTO_REPLY = "auto_reply"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Failure:
    """One recipient a report is about."""

    email: str
    kind: Kind
    status: str = ""
    diagnostic: str = ""


@dataclass(frozen=True)
class Report:
    kind: Kind
    identity: str  # the same for every copy of one message: its Message-ID, else its bytes' hash
    failures: tuple[Failure, ...] = ()
    delivered_to: tuple[str, ...] = ()  # where the message was sent: our VERP address, on a bounce
    original_message_id: str = ""  # the Message-ID of our copy, when the report quotes it
    original_sender: str = ""  # the envelope sender of our copy, when the report gives it (ARF)
    reason: str = ""  # for UNKNOWN: why it is left for a person


def classify(raw: bytes) -> Report:
    """The report a message makes; never raises on malformed or hostile input."""
    if len(raw) > MAX_MESSAGE_BYTES:
        head = BytesHeaderParser(policy=compat32).parsebytes(raw[:65536])
        return Report(Kind.UNKNOWN, _identity(head, raw), reason=f"larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        msg = email.message_from_bytes(raw, policy=compat32)
        return _classify(msg, raw)
    except Exception as exc:  # whatever a hostile message breaks in the parser, it is not ours
        return Report(Kind.UNKNOWN, "sha256:" + hashlib.sha256(raw).hexdigest(),
                      reason=f"unreadable message ({type(exc).__name__})")


def _classify(msg: Message, raw: bytes) -> Report:
    identity = _identity(msg, raw)
    delivered_to = tuple(_addresses(msg, _DELIVERED_TO))
    report_type = (msg.get_param("report-type") or "").lower() if msg.get_content_type() == "multipart/report" else ""
    if report_type == "delivery-status":
        failures = _dsn_failures(msg)
        if failures:
            kind = Kind.HARD if any(f.kind is Kind.HARD for f in failures) else Kind.SOFT
            return Report(kind, identity, failures, delivered_to, _original_message_id(msg))
    if report_type == "feedback-report":
        return _arf(msg, identity, delivered_to)
    temporary, permanent = all_failures(msg)
    if permanent or temporary:
        failures = tuple(
            [Failure(_text(a), Kind.HARD) for a in sorted(permanent)]
            + [Failure(_text(a), Kind.SOFT) for a in sorted(temporary - permanent)]
        )
        kind = Kind.HARD if permanent else Kind.SOFT
        return Report(kind, identity, failures, delivered_to, _original_message_id(msg))
    if _auto_reply(msg):
        return Report(Kind.AUTO_REPLY, identity, (), delivered_to)
    return Report(Kind.UNKNOWN, identity, (), delivered_to, reason="not a bounce, complaint or auto-reply")


def _identity(msg: Message, raw: bytes) -> str:
    found = _MESSAGE_ID.search(str(msg.get("Message-ID", "")))
    return "message-id:" + found.group(0) if found else "sha256:" + hashlib.sha256(raw).hexdigest()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _addresses(msg: Message, names: tuple[str, ...]) -> list[str]:
    values = [str(v) for name in names for v in (msg.get_all(name) or [])]
    return [address for _, address in getaddresses(values) if "@" in address]


def _field_address(value: str | None) -> str:
    """The address of a DSN/ARF address field: `rfc822; someone@example.org`."""
    if not value:
        return ""
    _, _, address = str(value).rpartition(";")
    return address.strip().strip("<>")


def _dsn_failures(msg: Message) -> tuple[Failure, ...]:
    failures = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            blocks = [HeaderParser(policy=compat32).parsestr(b) for b in str(blocks).split("\n\n") if b.strip()]
        for block in blocks[1:]:  # the first block is about the message, the rest one per recipient
            failure = _dsn_recipient(block)
            if failure is not None:
                failures.append(failure)
    return tuple(failures)


def _dsn_recipient(block: Message) -> Failure | None:
    address = _field_address(block.get("Final-Recipient")) or _field_address(block.get("Original-Recipient"))
    action = str(block.get("Action", "")).strip().lower()
    status = _STATUS.search(str(block.get("Status", "")))
    if not address or action not in ("failed", "delayed"):
        return None  # delivered, relayed, expanded: nothing went wrong
    code = status.group(0) if status else ""
    # RFC 3463: class 5 is permanent, class 4 persistent but transient; "delayed" is never final.
    kind = Kind.HARD if action == "failed" and code.startswith("5") else Kind.SOFT
    diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())[:500]
    return Failure(address, kind, code, diagnostic)


def _arf(msg: Message, identity: str, delivered_to: tuple[str, ...]) -> Report:
    fields: Message | None = None
    for part in msg.walk():
        if part.get_content_type() == "message/feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                fields = payload[0]
            elif isinstance(payload, str):
                fields = HeaderParser(policy=compat32).parsestr(payload)
            break
    if fields is None:
        return Report(Kind.UNKNOWN, identity, (), delivered_to, reason="feedback report without its report part")
    feedback_type = str(fields.get("Feedback-Type", "")).strip().lower()
    original = _original_headers(msg)
    recipients = [_field_address(v) for v in fields.get_all("Original-Rcpt-To") or []]
    recipients += [_field_address(v) for v in fields.get_all("Removal-Recipient") or []]
    if not recipients and original is not None:
        recipients = _addresses(original, ("To",))
    sender = _field_address(fields.get("Original-Mail-From"))
    if not sender and original is not None:
        sender = next(iter(_addresses(original, ("Return-Path",))), "")
    if feedback_type not in _COMPLAINT_TYPES:
        return Report(Kind.UNKNOWN, identity, (), delivered_to, reason=f"feedback report of type {feedback_type!r}")
    failures = tuple(Failure(r, Kind.COMPLAINT, diagnostic=f"feedback type {feedback_type}") for r in recipients if r)
    message_id = _original_message_id(msg)
    return Report(Kind.COMPLAINT, identity, failures, delivered_to, message_id, sender)


def _original_headers(msg: Message) -> Message | None:
    """The headers of the message a report is about (message/rfc822 or text/rfc822-headers part)."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
        elif kind == "text/rfc822-headers":
            body = part.get_payload(decode=True) or b""
            return BytesHeaderParser(policy=compat32).parsebytes(body)
    return None


def _original_message_id(msg: Message) -> str:
    original = _original_headers(msg)
    if original is None:
        return ""
    found = _MESSAGE_ID.search(str(original.get("Message-ID", "")))
    return found.group(0) if found else ""


def _auto_reply(msg: Message) -> bool:
    """RFC 3834's Auto-Submitted, and the older headers vacation programs still send."""
    submitted = str(msg.get("Auto-Submitted", "")).strip().lower()
    if submitted and not submitted.startswith("no"):
        return True
    if msg.get("X-Autoreply") or msg.get("X-Autorespond"):
        return True
    return str(msg.get("Precedence", "")).strip().lower() == "auto_reply"
