"""The send worker: a process of a few threads, each a loop that claims a batch from the ledger,
hands it to its own transport and records the answers in one transaction right after.

Workers are processes, not threads: building and writing 40 KB messages is CPU work that the
GIL would serialise. Each process has its own store connections and each thread its own
transport (for SMTP, its own connection). Because the ledger is the only coordination, workers
of other `newsletter send` processes, on this or other machines (PostgreSQL), share the mailing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.config import Config
from newsletter.errors import NewsletterError, TransportError
from newsletter.send import ledger
from newsletter.send.copies import CopyFactories
from newsletter.send.envelopes import envelope
from newsletter.send.ledger import Claimed
from newsletter.send.ratelimit import TokenBucket
from newsletter.send.retry import MAX_RETRY_AFTER, bounce_kind, failure_reason, judge
from newsletter.send.transport import Envelope, Result, Transport
from newsletter.send.transports import KINDS, open_transport
from newsletter.store import utcnow
from newsletter.store.db import create_engine
from newsletter.subscribers import record_bounce

# Longest a worker waits between looks at the ledger when others hold the remaining deliveries.
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to know, sent to it when it is spawned."""

    config: Config
    mailing_id: int
    label: str
    parent_pid: int


def _die_with_parent(parent_pid: int) -> None:
    """A `kill -9` of `newsletter send` must stop its workers too, like a crash of the machine."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)


class Worker:
    """One connection's loop: claim a batch, hand it over, record the answers. A process runs a few.

    It tells the dispatcher what happened through `events`: ("progress", sent, failed,
    suppressed, retried), ("paused", reason) and ("error", message).
    """

    def __init__(self, spec: WorkerSpec, index: int, engine: sa.Engine, copies: CopyFactories,
                 bucket: TokenBucket | None, events: Any) -> None:
        self.spec = spec
        self.config = spec.config
        self.bucket = bucket
        self.events = events
        self.name = ledger.worker_name(f"{spec.label}-{index}")
        self.engine = engine
        self.copies = copies
        self.transport: Transport = open_transport(self.config)
        self.limit = min(self.config.transport.batch_size, self.transport.batch_limit)
        # The claim lease: longer than a live worker can hold a batch: every call of it may wait a
        # full timeout (SMTP: one per message; providers: one call), plus the rate limit's wait.
        t = self.config.transport
        calls = 1 if self.transport.personalises else self.limit
        rate_wait = self.limit / t.rate_per_second if t.rate_per_second else 0.0
        self.lease = timedelta(seconds=t.timeout_seconds * (calls + 2) + rate_wait)

    def envelope(self, c: Claimed) -> Envelope:
        factory, template = self.copies.get(c.content_key)
        return envelope(factory, template if self.transport.personalises else None, c.recipient, str(c.id))

    def hand_over(self, envelopes: list[Envelope]) -> list[Result]:
        """The transport's answers, in the order of `envelopes`.

        An HTTP provider's call carries one template, so a batch mixing copies of the mailing
        goes as one call per copy.
        """
        groups: dict[int, list[Envelope]] = {}
        for e in envelopes:
            groups.setdefault(id(e.template), []).append(e)
        if len(groups) == 1:
            return self._hand_over(envelopes)
        answers = {r.key: r for group in groups.values() for r in self._hand_over(group)}
        return [answers[e.key] for e in envelopes]

    def _hand_over(self, envelopes: list[Envelope]) -> list[Result]:
        if self.bucket is None:
            return self.transport.send(envelopes)
        # Pieces no bigger than the burst, so a batch never leaves faster than the limit allows.
        results: list[Result] = []
        step = max(1, min(self.bucket.burst, len(envelopes)))
        for i in range(0, len(envelopes), step):
            piece = envelopes[i:i + step]
            self.bucket.take(len(piece))
            results += self.transport.send(piece)
        return results

    def run(self) -> None:
        mailing_id = self.spec.mailing_id
        while True:
            now = utcnow()
            with self.engine.begin() as conn:
                claimed = ledger.claim(conn, mailing_id, self.name, self.limit, now, self.lease)
            if not claimed:
                if not self.wait_for_more():
                    return
                continue
            try:
                envelopes = [self.envelope(c) for c in claimed]
            except NewsletterError as exc:
                with self.engine.begin() as conn:
                    ledger.release(conn, [c.id for c in claimed])
                    ledger.pause(conn, mailing_id, f"cannot build the message: {exc}")
                raise
            wait_after: float | None = None
            try:
                results = self.hand_over(envelopes)
            except TransportError as exc:
                if exc.permanent:
                    # The transport itself is unusable (login refused, bad token): no delivery is to
                    # blame, so none is failed; the mailing waits for the operator.
                    with self.engine.begin() as conn:
                        ledger.release(conn, [c.id for c in claimed])
                        ledger.pause(conn, mailing_id, str(exc))
                    self.events.put(("paused", str(exc)))
                    return
                results = [Result(e.key, e.recipient, exc) for e in envelopes]
                # The server asked everyone to slow down: this worker waits too, not just the batch.
                wait_after = exc.retry_after
            self.record(claimed, results)
            if wait_after:
                time.sleep(min(wait_after, MAX_RETRY_AFTER))

    def record(self, claimed: list[Claimed], results: list[Result]) -> None:
        now = utcnow()
        outcomes = judge(self.config, claimed, results, now)
        failed = [(c, r) for c, r, o in zip(claimed, results, outcomes) if o.state == "failed"]
        with self.engine.begin() as conn:
            ledger.record(conn, outcomes, now)
            for c, r in failed:
                kind = bounce_kind(r)
                if kind:
                    record_bounce(conn, c.recipient.email, kind, self.transport.name, str(r.error),
                                  self.config.transport.soft_bounce_limit)
            if failed:
                reason = failure_reason(self.config, ledger.count(conn, self.spec.mailing_id), str(failed[-1][1].error))
                if reason and ledger.pause(conn, self.spec.mailing_id, reason):
                    self.events.put(("paused", reason))
        states = [o.state for o in outcomes]
        self.events.put(("progress", states.count("sent"), states.count("failed"), 0, states.count("pending")))

    def wait_for_more(self) -> bool:
        """Nothing to claim now: wait for retries or other workers, or say the work is over."""
        with self.engine.connect() as conn:
            status = ledger.status(conn, self.spec.mailing_id)
            left = ledger.unfinished(conn, self.spec.mailing_id)
            due = ledger.next_retry(conn, self.spec.mailing_id)
        if status != "sending" or left == 0:
            return False
        wait = POLL_SECONDS if due is None else (due - utcnow()).total_seconds()
        time.sleep(min(max(wait, 0.05), POLL_SECONDS))
        return True

    def run_reporting(self) -> None:
        try:
            self.run()
        except NewsletterError as exc:
            self.events.put(("error", str(exc)))
        except Exception as exc:
            self.events.put(("error", f"send worker {self.name} crashed: {exc!r}"))
            raise
        finally:
            self.transport.close()


def worker_main(spec: WorkerSpec, threads: int, bucket: TokenBucket | None, events: Any) -> None:
    """A worker process: its own store connections and `threads` transports (SMTP connections).

    Threads share the process's message factory; while one waits on the network another builds
    and writes, which is where threads help. Processes are what spread the CPU work over cores.
    """
    _die_with_parent(spec.parent_pid)
    engine = create_engine(spec.config.store_url)
    try:
        with engine.connect() as conn:
            mailing = ledger.mailing(conn, spec.mailing_id)
        copies = CopyFactories(spec.config, engine, mailing, provider=KINDS[spec.config.transport.kind].personalises)
        workers = [Worker(spec, i, engine, copies, bucket, events) for i in range(threads)]
    except NewsletterError as exc:
        events.put(("error", str(exc)))
        engine.dispose()
        return
    running = [threading.Thread(target=w.run_reporting, name=w.name) for w in workers]
    for t in running:
        t.start()
    for t in running:
        t.join()
    engine.dispose()
