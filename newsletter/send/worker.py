"""The send worker: a process of a few threads, each a loop that claims a batch from the ledger,
hands it to its own transport and records the answers in one transaction right after. The
ledger's transactions are run for it by the sending command's clerks (`newsletter.send.clerk`),
through one `LedgerLink` per thread, so a worker carries no database code.

Workers are processes, not threads: building and writing 40 KB messages is CPU work that the
GIL would serialise. Each process has its own store connections and each thread its own
transport (for SMTP, its own connection). Because the ledger is the only coordination, workers
of other `newsletter send` processes, on this or other machines (PostgreSQL), share the mailing.

The command's heartbeat keeps each live worker's claims fresh (`ledger.heartbeat`), so the
claim lease is short whatever a batch takes. When the dispatcher sets `stopping`, each worker
hands over nothing more: message transports get one envelope per call, so a stop waits for at
most the message in flight (one transport timeout); the rest of the batch is given back.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from typing import Any, Iterator, Sequence

from newsletter.bounces import verp
from newsletter.config import Config
from newsletter.digest.message import MailingContent
from newsletter.errors import NewsletterError, RecipientError, TransportError
from newsletter.send.claims import Bounce, Claimed, LedgerLink
from newsletter.send.copies import CopyFactories
from newsletter.send.envelopes import envelope
from newsletter.send.ratelimit import TokenBucket
from newsletter.send.retry import MAX_RETRY_AFTER, bounce_kind, judge
from newsletter.send.transport import Envelope, Result, Transport
from newsletter.send.transports import open_transport, personalises
from newsletter.states import DeliveryState

# Longest a worker waits between looks at the ledger when others hold the remaining deliveries.
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to know, sent to it when it is spawned."""

    config: Config
    mailing: MailingContent  # the whole mailing, as it was frozen when created
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

    def __init__(self, spec: WorkerSpec, name: str, ledger: LedgerLink, copies: CopyFactories,
                 bucket: TokenBucket | None, events: Any, stopping: Any) -> None:
        self.spec = spec
        self.name = name  # its claims' name in the ledger (its clerk claims under it)
        self.config = spec.config
        self.bucket = bucket
        self.events = events
        self.stopping = stopping
        self.ledger = ledger
        self.copies = copies
        self.transport: Transport = open_transport(self.config)
        self.limit = min(self.config.transport.batch_size, self.transport.batch_limit)
        # Providers take a batch in one call, and so does SMTP, which hears a stop between two
        # messages itself (it pipelines them); other message transports take one envelope at a
        # time, so a stop is heard between any two messages.
        self.takes_data = getattr(self.transport, "takes_data", False)
        self.step = 1
        if self.transport.personalises:
            self.step = self.limit
        elif getattr(self.transport, "hears_stop", False):
            self.transport.stopping = stopping  # type: ignore[attr-defined]
            self.step = self.limit
        # VERP for copies that leave as whole messages (SMTP): a bounce then names its delivery.
        bounces = self.config.bounces
        self.return_path = bounces.return_path if bounces and not self.transport.personalises else ""
        self.verp_key = self.config.secret_key() if self.return_path else b""

    def envelope(self, c: Claimed) -> Envelope:
        factory, template = self.copies.get(c.content_key)
        made = envelope(factory, template if self.transport.personalises else None, c.recipient, str(c.id),
                        data=self.takes_data)
        if self.return_path:
            made = replace(made, sender=verp.address(self.verp_key, self.return_path, c.id))
        return made

    def envelopes(self, claimed: list[Claimed]) -> tuple[list[Claimed], list[Envelope]]:
        """The claims whose copy could be made, and their envelopes. A recipient whose address
        cannot go on the wire fails on their own, recorded here at once, so one such address
        neither stops the mailing nor comes back after each lease; any other error (the
        mailing's content, the DKIM key) concerns every copy and is raised."""
        made: list[tuple[Claimed, Envelope]] = []
        refused: list[tuple[Claimed, RecipientError]] = []
        for c in claimed:
            try:
                made.append((c, self.envelope(c)))
            except RecipientError as exc:
                refused.append((c, exc))
        if refused:
            self.record([c for c, _ in refused],
                        [Result(str(c.id), c.recipient.email, TransportError(str(exc), permanent=True))
                         for c, exc in refused])
        return [c for c, _ in made], [e for _, e in made]

    def pieces(self, envelopes: Sequence[Envelope], step: int) -> Iterator[tuple[int, Sequence[Envelope]]]:
        """(start, piece): at most `step` envelopes of one copy each, since a provider's call carries
        one template (`run` orders a batch by copy, so a batch of one copy stays whole)."""
        start = 0
        while start < len(envelopes):
            end = start + 1
            while end < len(envelopes) and end - start < step and envelopes[end].template is envelopes[start].template:
                end += 1
            yield start, envelopes[start:end]
            start = end

    def hand_over(self, envelopes: Sequence[Envelope]) -> list[Result]:
        """Results for the envelopes handed over, in order: all of them unless a stop came first.

        Raises TransportError only when the first call failed as a whole (nothing was judged).
        """
        # Pieces no bigger than the burst either, so a batch never leaves faster than the limit allows.
        step = min(self.step, self.bucket.burst) if self.bucket else self.step
        results: list[Result] = []
        for i, piece in self.pieces(envelopes, step):
            if self.stopping.is_set():
                break
            if self.bucket is not None:
                self.bucket.take(len(piece))
            try:
                answered = self.transport.send(piece)
                results += answered
                if len(answered) < len(piece):
                    break  # the transport heard the stop mid-piece
            except TransportError as exc:
                if not results:
                    raise
                # The server went away mid-batch: the rest are not judged, so they wait for a retry.
                retry = TransportError(str(exc), retry_after=exc.retry_after)
                results += [Result(e.key, e.recipient, retry) for e in envelopes[i:]]
                break
        return results

    def run(self) -> None:
        # The next batch, claimed in the transaction that recorded the last one (None: claim it
        # now): one write transaction per batch, so four connections of one SQLite store do not
        # queue for its lock twice a batch. It is claimed, not handed over, so not in doubt.
        claimed: list[Claimed] | None = None
        while not self.stopping.is_set():
            if claimed is None:
                claimed = self.ledger.claim(self.limit)
            if not claimed:
                claimed = None
                if not self.wait_for_more():
                    return
                continue
            claimed.sort(key=lambda c: (c.content_key or "", c.id))
            try:
                claimed, envelopes = self.envelopes(claimed)
            except NewsletterError as exc:
                self.ledger.release([c.id for c in claimed], pause=f"cannot build the message: {exc}")
                raise
            wait_after: float | None = None
            try:
                results = self.hand_over(envelopes)
            except TransportError as exc:
                if exc.permanent:
                    # The transport itself is unusable (login refused, bad token): no delivery is to
                    # blame, so none is failed; the mailing waits for the operator.
                    self.ledger.release([c.id for c in claimed], pause=str(exc))
                    self.events.put(("paused", str(exc)))
                    return
                results = [Result(e.key, e.recipient, exc) for e in envelopes]
                # The server asked everyone to slow down: this worker waits too, not just the batch.
                wait_after = exc.retry_after
            if len(results) < len(claimed):
                self.ledger.release([c.id for c in claimed[len(results):]])
            carry_on = len(results) == len(claimed) and not wait_after
            claimed = self.record(claimed[:len(results)], results, claim_next=carry_on) if results else None
            if wait_after:
                self.stopping.wait(min(wait_after, MAX_RETRY_AFTER))
        if claimed:
            # Stopped with the next batch claimed and not handed over: it goes back untouched.
            self.ledger.release([c.id for c in claimed])

    def record(self, claimed: list[Claimed], results: list[Result], *,
               claim_next: bool = False) -> list[Claimed] | None:
        """Record the answers; with `claim_next` (and no stop asked), claim the next batch in the
        same transaction and return it."""
        now = datetime.now(timezone.utc)
        outcomes = judge(self.config, claimed, results, now)
        failed = [(c, r) for c, r, o in zip(claimed, results, outcomes) if o.state == DeliveryState.FAILED]
        bounces = [Bounce(c.recipient.email, kind, self.transport.name, str(r.error))
                   for c, r in failed if (kind := bounce_kind(r))]
        recorded = self.ledger.record(outcomes, now, bounces, str(failed[-1][1].error) if failed else None,
                                      self.limit if claim_next and not self.stopping.is_set() else 0)
        if recorded.paused:
            self.events.put(("paused", recorded.paused))
        states = [o.state for o in outcomes]
        self.events.put(("progress", states.count(DeliveryState.SENT), states.count(DeliveryState.FAILED), 0,
                         states.count(DeliveryState.PENDING)))
        return recorded.following

    def wait_for_more(self) -> bool:
        """Nothing to claim now: wait for retries or other workers, or say the work is over."""
        outlook = self.ledger.outlook()
        if outlook.over:
            return False
        wait = POLL_SECONDS if outlook.due is None else (outlook.due - datetime.now(timezone.utc)).total_seconds()
        self.stopping.wait(min(max(wait, 0.05), POLL_SECONDS))
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


def worker_main(spec: WorkerSpec, links: list[tuple[str, Connection]], copies_link: Connection,
                bucket: TokenBucket | None, events: Any, stopping: Any) -> None:
    """A worker process: one thread and one transport (SMTP connection) per link to a clerk
    (with the name its clerk claims under); `copies_link` is the one through which it reads the
    mailing's per-reader copies.

    Threads share the process's message factory; while one waits on the network another builds
    and writes, which is where threads help. Processes are what spread the CPU work over cores.
    Ctrl-C reaches the whole foreground process group: the worker leaves it to the dispatcher,
    which decides between winding down and stopping at once; a SIGTERM to the group winds down.
    """
    _die_with_parent(spec.parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    reader = LedgerLink(copies_link)
    try:
        copies = CopyFactories(spec.config, spec.mailing, reader.copy,
                               provider=personalises(spec.config.transport.kind))
        workers = [Worker(spec, name, LedgerLink(link), copies, bucket, events, stopping) for name, link in links]
    except NewsletterError as exc:
        events.put(("error", str(exc)))
        return
    running = [threading.Thread(target=w.run_reporting, name=w.name) for w in workers]
    for t in running:
        t.start()
    for t in running:
        t.join()
    for w in workers:
        w.ledger.close()
    reader.close()
