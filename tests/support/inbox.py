"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it accepts."""

from __future__ import annotations

import email
import threading
import time
from email.message import Message

from aiosmtpd.controller import Controller

from tests.support.serve import free_port


class Inbox:
    """A real SMTP server on 127.0.0.1 that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        with self._lock:
            self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def wait_for(self, to: str, timeout: float = 20) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for message in self.messages:
                    if message["To"] == to:
                        return message
            time.sleep(0.1)
        raise AssertionError(f"no message to {to} within {timeout} s; got {[m['To'] for m in self.messages]}")

    def sent_to(self, to: str) -> int:
        with self._lock:
            return sum(1 for m in self.messages if m["To"] == to)

    def all_to(self, to: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m["To"] == to]


def text_part(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text/plain part")
