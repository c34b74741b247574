"""The dispatcher: worker processes claim batches from the ledger, hand them over, record results.

Workers are processes, not threads: building and writing 40 KB messages is CPU work that the
GIL would serialise. Each worker has its own store connection and its own transport (for SMTP,
its own connection), claims a batch, sends it, and records what the server said in one
transaction right after it answered. Because the ledger is the only coordination, workers of
other `newsletter send` processes, on this or other machines (PostgreSQL), share the mailing.

What a crash can duplicate: a worker that dies after the transport accepted a batch and before
the ledger recorded it leaves that batch `sending`; a resume sends it again. That window is one
batch per worker: `Transport.batch_limit` messages (20 for SMTP, one API call for providers,
capped by `[transport].batch_size`).
"""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import os
import queue
import secrets
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping, Sequence

import sqlalchemy as sa

from newsletter.config import Config
from newsletter.digest import MailingContent, MessageFactory, placeholders
from newsletter.errors import NewsletterError, StoreError, TransportError
from newsletter.recipients import Recipient
from newsletter.send import ledger
from newsletter.send.ledger import Claimed, Outcome
from newsletter.send.ratelimit import TokenBucket
from newsletter.send.transport import Envelope, MessageTemplate, Result, Transport
from newsletter.send.transports import batch_limit, open_transport
from newsletter.store import schema, utcnow
from newsletter.store.db import create_engine
from newsletter.subscribers import record_bounce
from newsletter.subscribers.suppression import suppressed_among

# Longest a worker waits between looks at the ledger when others hold the remaining deliveries.
POLL_SECONDS = 1.0
# Longest wait honoured from a Retry-After, so a silly header cannot stall a send for a day.
MAX_RETRY_AFTER = 3600.0


# Headers a provider writes itself from the call's fields (or must write, like its Message-ID).
PROVIDER_OWN_HEADERS = frozenset({"from", "to", "subject", "date", "message-id", "mime-version", "content-type"})


def provider_template(factory: MessageFactory) -> MessageTemplate:
    """The mailing as HTTP providers take it: one template with the digest's placeholders in."""
    t = factory.template()
    headers = {k: v for k, v in t.headers.items() if k.lower() not in PROVIDER_OWN_HEADERS}
    return MessageTemplate(t.headers["From"], t.subject, t.html, t.text, headers)


def provider_envelope(factory: MessageFactory, template: MessageTemplate, recipient: Recipient,
                      key: str) -> Envelope:
    """A recipient's values keyed by the literal placeholder, and their own headers (List-Unsubscribe)."""
    values = {str(placeholders.placeholder(k)): v for k, v in factory.variables(recipient).items()}
    headers = {k: v for k, v in factory.recipient_headers(recipient).items() if k.lower() not in PROVIDER_OWN_HEADERS}
    return Envelope(factory.envelope_sender, recipient.email, key=key, name=recipient.name, template=template,
                    variables=values, headers=headers)


@dataclass
class SendSummary:
    mailing_id: int
    status: str  # the mailing's status afterwards: sending | paused | done | cancelled
    paused_reason: str | None = None
    sent: int = 0  # by this run
    failed: int = 0
    suppressed: int = 0
    retried: int = 0  # deliveries put back for a later attempt
    duration_seconds: float = 0.0
    dry_run: bool = False
    would_send: int = 0  # dry run: copies rendered and counted
    totals: dict[str, int] = field(default_factory=dict)  # the ledger's counts afterwards

    @property
    def per_second(self) -> float:
        done = self.would_send if self.dry_run else self.sent
        return done / self.duration_seconds if self.duration_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "per_second": round(self.per_second, 1)}


@dataclass(frozen=True)
class _WorkerSpec:
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


def backoff(config: Config, attempts: int, retry_after: float | None) -> float:
    """Seconds before the next attempt: the server's Retry-After, else doubling from the base."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    return min(config.transport.retry_base_seconds * 2 ** max(attempts - 1, 0), MAX_RETRY_AFTER)


def judge(config: Config, claimed: Sequence[Claimed], results: Sequence[Result],
          now: datetime) -> list[Outcome]:
    """Turn the transport's answers into ledger outcomes (pure: easy to test with data)."""
    outcomes = []
    for c, r in zip(claimed, results):
        attempts = c.attempts + 1
        if r.ok:
            outcomes.append(Outcome(c.id, "sent", provider_message_id=r.provider_message_id))
        elif r.error.permanent:
            outcomes.append(Outcome(c.id, "failed", str(r.error)))
        elif attempts > config.transport.retries:
            outcomes.append(Outcome(c.id, "failed", f"gave up after {attempts} attempts: {r.error}"))
        else:
            delay = backoff(config, attempts, r.error.retry_after)
            outcomes.append(Outcome(c.id, "pending", str(r.error), next_attempt_at=now + timedelta(seconds=delay)))
    return outcomes


def failure_reason(config: Config, counts: Mapping[str, int], last_error: str) -> str | None:
    """Why the mailing should pause, or None: too many of the finished deliveries failed."""
    finished = counts["sent"] + counts["failed"]
    threshold = config.transport.failure_threshold
    if finished < config.transport.failure_min or counts["failed"] <= threshold * finished:
        return None
    return (f"{counts['failed']} of {finished} finished deliveries failed (threshold {threshold:.0%}); "
            f"last error: {last_error}")


class _Worker:
    """One connection's loop: claim a batch, hand it over, record the answers. A process runs a few."""

    def __init__(self, spec: _WorkerSpec, index: int, engine: sa.Engine, factory: MessageFactory,
                 bucket: TokenBucket | None, events: Any) -> None:
        self.spec = spec
        self.config = spec.config
        self.bucket = bucket
        self.events = events
        self.name = ledger.worker_name(f"{spec.label}-{index}")
        self.engine = engine
        self.factory = factory
        self.transport: Transport = open_transport(self.config)
        self.template = provider_template(self.factory) if self.transport.personalises else None
        self.limit = min(self.config.transport.batch_size, self.transport.batch_limit)
        # The claim lease: longer than a live worker can hold a batch: every call of it may wait a
        # full timeout (SMTP: one per message; providers: one call), plus the rate limit's wait.
        t = self.config.transport
        calls = 1 if self.transport.personalises else self.limit
        rate_wait = self.limit / t.rate_per_second if t.rate_per_second else 0.0
        self.lease = timedelta(seconds=t.timeout_seconds * (calls + 2) + rate_wait)

    def envelope(self, c: Claimed) -> Envelope:
        r = c.recipient
        if self.template is not None:
            return provider_envelope(self.factory, self.template, r, str(c.id))
        return Envelope(self.factory.envelope_sender, r.email, self.factory.build(r), key=str(c.id), name=r.name)

    def hand_over(self, envelopes: list[Envelope]) -> list[Result]:
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
        config = self.config
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
                # A hard bounce suppresses at once; a temporary error that outlasted every retry
                # counts as a soft bounce, so soft_bounce_limit holds for SMTP as for webhooks.
                kind = "hard" if r.hard_bounce else "soft" if not r.error.permanent else None
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
            status = conn.scalar(sa.select(schema.mailings.c.status).where(schema.mailings.c.id == self.spec.mailing_id))
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


def _worker_main(spec: _WorkerSpec, threads: int, bucket: TokenBucket | None, events: Any) -> None:
    """A worker process: its own store connections and `threads` transports (SMTP connections).

    Threads share the process's message factory; while one waits on the network another builds
    and writes, which is where threads help. Processes are what spread the CPU work over cores.
    """
    _die_with_parent(spec.parent_pid)
    engine = create_engine(spec.config.store_url)
    try:
        with engine.connect() as conn:
            mailing = conn.execute(sa.select(schema.mailings).where(schema.mailings.c.id == spec.mailing_id)).one()
        factory = MessageFactory(spec.config, mailing)
        workers = [_Worker(spec, i, engine, factory, bucket, events) for i in range(threads)]
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mailing(conn: sa.Connection, mailing_id: int) -> sa.Row:
    row = conn.execute(sa.select(schema.mailings).where(schema.mailings.c.id == mailing_id)).one_or_none()
    if row is None:
        raise StoreError(f"no mailing with id {mailing_id} in the store")
    return row


def _summary(engine: sa.Engine, mailing_id: int, **kw: Any) -> SendSummary:
    with engine.connect() as conn:
        row = _mailing(conn, mailing_id)
        totals = ledger.count(conn, mailing_id)
    return SendSummary(mailing_id, row.status, row.paused_reason, totals=totals, **kw)


Progress = Callable[[int, int], None]


def send_mailing(config: Config, engine: sa.Engine, mailing_id: int, *, worker: str, dry_run: bool = False,
                 progress: Progress | None = None) -> SendSummary:
    """Send a mailing's remaining deliveries and say what happened.

    `worker` names this sender in the ledger's claims. `progress(done, total)` is called as
    deliveries finish.
    A paused, done or cancelled mailing is left as it is.
    """
    started = time.monotonic()
    if dry_run:
        return _dry_run(config, engine, mailing_id, started)
    with engine.begin() as conn:
        row = _mailing(conn, mailing_id)
        if row.status == "sending":
            ledger.release_dead_claims(conn, mailing_id, _pid_alive)
            if row.started_at is None:
                conn.execute(sa.update(schema.mailings).where(schema.mailings.c.id == mailing_id)
                             .values(started_at=utcnow()))
        counts = ledger.count(conn, mailing_id)
    if row.status != "sending":
        return _summary(engine, mailing_id, duration_seconds=time.monotonic() - started)
    total = sum(counts.values())
    done = total - counts["pending"] - counts["sending"]
    if progress:
        progress(done, total)

    ctx = multiprocessing.get_context("spawn")
    t = config.transport
    bucket = TokenBucket(t.rate_per_second, t.burst, ctx) if t.rate_per_second > 0 else None
    events = ctx.Queue()
    per_connection = min(t.batch_size, batch_limit(t.kind))
    connections = max(1, min(t.connections, math.ceil(counts["pending"] / per_connection)))
    # One process per core at most (more only adds memory); the connections are spread over them.
    n_processes = min(os.cpu_count() or 1, connections)
    spec = _WorkerSpec(config, mailing_id, worker, os.getpid())
    processes = [
        ctx.Process(target=_worker_main, name=f"send-{i}", daemon=True,
                    args=(spec, connections // n_processes + (i < connections % n_processes), bucket, events))
        for i in range(n_processes)
    ]
    for p in processes:
        p.start()
    tally = {"sent": 0, "failed": 0, "retried": 0}
    errors: list[str] = []

    def drain(timeout: float) -> None:
        nonlocal done
        try:
            event = events.get(timeout=timeout)
        except queue.Empty:
            return
        if event[0] == "progress":
            _, sent, failed, _suppressed, retried = event
            tally["sent"] += sent
            tally["failed"] += failed
            tally["retried"] += retried
            done += sent + failed
            if progress:
                progress(done, total)
        elif event[0] == "error":
            errors.append(event[1])

    while any(p.is_alive() for p in processes):
        drain(0.2)
    while not events.empty():
        drain(0.05)
    for p in processes:
        p.join()
    crashed = [p for p in processes if p.exitcode not in (0, None)]
    with engine.begin() as conn:
        ledger.finish_if_done(conn, mailing_id, utcnow())
    summary = _summary(engine, mailing_id, sent=tally["sent"], failed=tally["failed"], retried=tally["retried"],
                       duration_seconds=time.monotonic() - started)
    summary.suppressed = summary.totals["suppressed"]
    if progress:
        progress(total - summary.totals["pending"] - summary.totals["sending"], total)
    if errors:
        raise NewsletterError(f"mailing {mailing_id}: {errors[0]}")
    if crashed:
        raise NewsletterError(f"mailing {mailing_id}: {len(crashed)} send worker(s) died (exit code "
                              f"{crashed[0].exitcode}); `newsletter send --resume` carries on")
    return summary


def _dry_run(config: Config, engine: sa.Engine, mailing_id: int, started: float) -> SendSummary:
    """Render every remaining copy and count it; touch nothing in the ledger."""
    d = schema.deliveries
    s = schema.subscribers
    with engine.connect() as conn:
        row = _mailing(conn, mailing_id)
    message_factory = MessageFactory(config, row)
    would_send = suppressed = 0
    last_id = 0
    while True:
        with engine.connect() as conn:
            page = conn.execute(
                sa.select(d.c.id, d.c.email, d.c.subscriber_id, s.c.name, s.c.language)
                .select_from(d.outerjoin(s, s.c.id == d.c.subscriber_id))
                .where(d.c.mailing_id == mailing_id, d.c.state.in_(("pending", "sending")), d.c.id > last_id)
                .order_by(d.c.id).limit(1000)
            ).all()
            blocked = suppressed_among(conn, [r.email for r in page])
        if not page:
            break
        last_id = page[-1].id
        for r in page:
            if r.email in blocked:
                suppressed += 1
                continue
            message_factory.build(Recipient(r.subscriber_id, r.email, r.name or "", r.language or ""))
            would_send += 1
    summary = _summary(engine, mailing_id, dry_run=True, would_send=would_send,
                       duration_seconds=time.monotonic() - started)
    summary.suppressed = suppressed
    return summary


def send_test(config: Config, mailing: MailingContent, email: str) -> Result:
    """Send one copy of a mailing (stored, or a draft) to `email` as a test; the ledger does not record it."""
    # Each test copy is a copy of its own (an outbox file, a Message-ID), never one a delivery gets.
    key = f"test-{'draft' if mailing.id is None else mailing.id}-{secrets.token_hex(6)}"
    message_factory = MessageFactory(config, mailing, test=True)
    recipient = Recipient(None, email)
    transport = open_transport(config)
    try:
        if transport.personalises:
            envelope = provider_envelope(message_factory, provider_template(message_factory), recipient, key)
        else:
            envelope = Envelope(message_factory.envelope_sender, email, message_factory.build(recipient), key=key)
        (result,) = transport.send([envelope])
    finally:
        transport.close()
    if not result.ok:
        raise result.error
    return result
