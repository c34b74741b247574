"""Who a message goes to: the only subscriber fields rendering and transports may see."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipient:
    id: int | None  # subscriber id; None for a one-off test address (`send --to`)
    email: str
    name: str = ""
    language: str = ""
