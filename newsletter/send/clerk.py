"""The ledger's clerks: threads of the sending command that read and write the ledger for its
workers, one per connection, each answering the requests of one worker thread's `LedgerLink`.

The transactions are the ones a worker used to run itself (a claim; a batch's outcomes with its
bounces, a pause and the next claim; a release), in the same order around the hand-over, so the
in-doubt window is still one batch per connection. A clerk's claimer name is its own and lives on
the command's heartbeat while its worker is there: when the worker process dies, its pipe
closes, the clerk stops, its name leaves the heartbeat and its claims expire within one lease,
as they did when the worker beat for itself. When the command dies, its workers die with it.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any, Callable

import sqlalchemy as sa

from newsletter.config import Config
from newsletter.digest.message import MailingContent
from newsletter.errors import NewsletterError
from newsletter.send import ledger
from newsletter.send.claims import (
    BROKE, CLAIM, COPY, OK, OUTLOOK, RECORD, REFUSED, RELEASE, Bounce, Claimed, Outcome, Outlook, Recorded,
)
from newsletter.send.retry import failure_reason
from newsletter.store import utcnow
from newsletter.subscribers.suppression import record_bounce

log = logging.getLogger(__name__)


class Clerk:
    """Serves one link until its worker closes it or dies. `name` is None for a link that only
    asks for copies (it claims nothing, so it is on no heartbeat)."""

    def __init__(self, config: Config, engine: sa.Engine, mailing: MailingContent, name: str | None,
                 pipe: Connection) -> None:
        self.config = config
        self.engine = engine
        self.mailing = mailing
        self.name = name
        self.pipe = pipe
        self.lease = timedelta(seconds=config.transport.claim_lease_seconds)
        self.serving = True
        self._handlers: dict[str, Callable[..., Any]] = {
            CLAIM: self.claim, RELEASE: self.release, RECORD: self.record, OUTLOOK: self.outlook, COPY: self.copy,
        }
        self.thread = threading.Thread(target=self.serve, name=f"clerk {name or 'of copies'}", daemon=True)

    def serve(self) -> None:
        try:
            while True:
                try:
                    request, args = self.pipe.recv()
                except (EOFError, OSError):
                    return  # the worker is done, or died: its claims are left to the lease
                try:
                    answer = (OK, self._handlers[request](*args))
                except NewsletterError as exc:
                    answer = (REFUSED, str(exc))
                except Exception as exc:
                    log.exception("ledger clerk failed", extra={"worker": self.name, "request": request})
                    answer = (BROKE, repr(exc))
                try:
                    self.pipe.send(answer)
                except OSError:
                    return
        finally:
            self.serving = False
            self.pipe.close()

    def _claimer(self) -> str:
        if self.name is None:
            raise NewsletterError("this link only reads copies; it claims nothing")
        return self.name

    def claim(self, limit: int) -> list[Claimed]:
        with self.engine.begin() as conn:
            return ledger.claim(conn, self.mailing.id, self._claimer(), limit, utcnow(), self.lease)

    def release(self, delivery_ids: list[int], pause: str | None) -> bool:
        with self.engine.begin() as conn:
            ledger.release(conn, self._claimer(), delivery_ids)
            return bool(pause) and ledger.pause(conn, self.mailing.id, pause)

    def record(self, outcomes: list[Outcome], now: datetime, bounces: list[Bounce], last_failure: str | None,
               claim_next: int) -> Recorded:
        name = self._claimer()
        soft_limit = self.config.transport.soft_bounce_limit
        paused: str | None = None
        following: list[Claimed] | None = None
        with self.engine.begin() as conn:
            ledger.record(conn, name, outcomes, now)
            for b in bounces:
                record_bounce(conn, b.email, b.kind, b.provider, b.detail, soft_limit)  # type: ignore[arg-type]
            if last_failure is not None:
                reason = failure_reason(self.config, ledger.count(conn, self.mailing.id), last_failure)
                if reason and ledger.pause(conn, self.mailing.id, reason):
                    paused = reason
            if claim_next:
                following = ledger.claim(conn, self.mailing.id, name, claim_next, now, self.lease)
        return Recorded(following, paused)

    def outlook(self) -> Outlook:
        with self.engine.connect() as conn:
            return Outlook(ledger.status(conn, self.mailing.id), ledger.unfinished(conn, self.mailing.id),
                           ledger.next_retry(conn, self.mailing.id))

    def copy(self, key: str) -> MailingContent:
        with self.engine.connect() as conn:
            return ledger.stored_copy(conn, self.mailing, key)
