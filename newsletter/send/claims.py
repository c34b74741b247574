"""What a send worker knows of the ledger: the deliveries it claimed, the outcomes it reports,
and the link through which it asks the sending command for both.

A worker process builds, signs and hands over copies; the ledger's reads and writes are done
for it by a clerk thread in the command (`newsletter.send.clerk`), one per connection, over a
pipe. So a worker loads neither SQLAlchemy nor the store's driver (nor the asyncio both pull
in): 25 MB less in each worker. This module is the worker's half and must stay free of them.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from newsletter.digest.message import MailingContent
from newsletter.errors import NewsletterError
from newsletter.recipients import Recipient
from newsletter.states import DeliveryState, MailingStatus

# The requests a link sends (the clerk answers each with one of the replies below).
CLAIM, RELEASE, RECORD, OUTLOOK, COPY = "claim", "release", "record", "outlook", "copy"
OK, REFUSED, BROKE = "ok", "refused", "broke"


@dataclass(frozen=True)
class Claimed:
    """A claimed delivery and who it goes to."""

    id: int
    attempts: int
    recipient: Recipient
    content_key: str | None = None  # which copy of the mailing (None: the whole mailing)


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    state: DeliveryState  # SENT | FAILED | PENDING (retry later) | SUPPRESSED
    error: str | None = None
    next_attempt_at: datetime | None = None
    provider_message_id: str | None = None


@dataclass(frozen=True)
class Bounce:
    """A failed delivery that counts against its address (`retry.bounce_kind`)."""

    email: str
    kind: str  # hard | soft
    provider: str
    detail: str


@dataclass(frozen=True)
class Recorded:
    """What recording a batch led to: the next batch, claimed in the same transaction (None when
    none was asked for), and why the mailing was paused by it (None: it was not)."""

    following: list[Claimed] | None
    paused: str | None


@dataclass(frozen=True)
class Outlook:
    """Where the mailing stands for a worker that found nothing to claim."""

    status: str | None
    left: int  # unfinished deliveries, claims of other workers included
    due: datetime | None  # when the earliest retry is due

    @property
    def over(self) -> bool:
        return self.status != MailingStatus.SENDING or self.left == 0


def worker_name(label: str) -> str:
    """A claimer's name, unique by its nonce; the host and pid in it are for operators to read only."""
    return f"{label}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"[:128]


class LedgerRefused(NewsletterError):
    """The clerk could not do what was asked for a reason an operator can act on (the store said no)."""


class LedgerBroke(RuntimeError):
    """The clerk failed unexpectedly (a bug or a lost store): the worker stops as if it had crashed."""


class LedgerLink:
    """A worker thread's end of its pipe to its clerk: each call is one request and its answer.

    Each connection's thread has its own link (and its clerk its own claimer name, so claims stay
    per connection as the in-doubt window is counted); a process's link for copies is shared by
    its threads, which the lock keeps to one request at a time."""

    def __init__(self, pipe: Connection) -> None:
        self._pipe = pipe
        self._lock = threading.Lock()

    def _ask(self, request: str, *args: Any) -> Any:
        with self._lock:
            self._pipe.send((request, args))
            kind, answer = self._pipe.recv()
        if kind == REFUSED:
            raise LedgerRefused(answer)
        if kind == BROKE:
            raise LedgerBroke(answer)
        return answer

    def claim(self, limit: int) -> list[Claimed]:
        """Up to `limit` due deliveries, claimed in their own transaction."""
        return self._ask(CLAIM, limit)

    def release(self, delivery_ids: list[int], pause: str | None = None) -> bool:
        """Give claims back untouched, and with `pause` pause the mailing in the same transaction;
        True when this paused it."""
        return self._ask(RELEASE, delivery_ids, pause)

    def record(self, outcomes: list[Outcome], now: datetime, bounces: list[Bounce], last_failure: str | None,
               claim_next: int) -> Recorded:
        """Write the outcomes and bounces in one transaction, pause the mailing when too many
        failed (`last_failure` is the error to quote), and with `claim_next` > 0 claim that many
        more in the same transaction."""
        return self._ask(RECORD, outcomes, now, bounces, last_failure, claim_next)

    def outlook(self) -> Outlook:
        return self._ask(OUTLOOK)

    def copy(self, key: str) -> MailingContent:
        """The mailing's stored copy `key` (per-reader copies)."""
        return self._ask(COPY, key)

    def close(self) -> None:
        self._pipe.close()
