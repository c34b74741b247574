"""Bounce messages for the tests: the corpus in tests/fixtures/bounces, written by us in the shapes
the RFCs and the big mailbox providers use, with the recipient, VERP address and Message-ID filled in."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "bounces"


def bounce(name: str, *, rcpt: str = "gone@example.net", verp: str = "bounces@news.example.org",
           message_id: str = "<1.0123456789abcdef01234567@example.org>") -> bytes:
    raw = (CORPUS / f"{name}.eml").read_bytes()
    return (raw.replace(b"%RCPT%", rcpt.encode()).replace(b"%VERP%", verp.encode())
            .replace(b"%MSGID%", message_id.encode()))
