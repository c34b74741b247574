"""The dispatcher: start worker processes on a mailing, gather what they report, sum it up.

The work itself is elsewhere: `send.worker` (the claim, hand over, record loop), `send.clerk`
(the ledger's transactions, run in this process for the workers), `send.retry` (what an answer
means), `send.envelopes` (what a transport takes), `send.dryrun`.

What a crash can duplicate: a worker that dies after the transport accepted a batch and before
the ledger recorded it leaves that batch `sending`; a resume sends it again. That window is one
batch per connection: `Transport.batch_limit` messages (20 for SMTP, one API call for providers,
capped by `[transport].batch_size`). Its claims expire `[transport].claim_lease_seconds` after
the last heartbeat that named them (the command stops renewing a worker's claims when its pipe
closes, and beats for none once it is gone itself), and any sender takes them back then.

A `Stop` (SIGTERM, Ctrl-C) winds the workers down: what they handed over is recorded, what they
claimed and did not hand over is given back, and the summary says the send was stopped. A
second request kills them where they stand, leaving their batches to the claim lease.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from multiprocessing.connection import Connection
from typing import Any, Callable, Iterator

import sqlalchemy as sa

from newsletter.config import Config
from newsletter.digest.message import MailingContent
from newsletter.errors import NewsletterError
from newsletter.send import ledger
from newsletter.send.claims import worker_name
from newsletter.send.clerk import Clerk
from newsletter.send.dryrun import render_remaining
from newsletter.send.ratelimit import TokenBucket
from newsletter.send.stop import Stop
from newsletter.send.transports import batch_limit
from newsletter.send.worker import WorkerSpec, worker_main
from newsletter.states import UNFINISHED, DeliveryState, MailingStatus
from newsletter.store import utcnow


@dataclass
class SendSummary:
    mailing_id: int
    status: str  # the mailing's status afterwards: sending | paused | done | cancelled
    paused_reason: str | None = None
    sent: int = 0  # by this run
    failed: int = 0
    suppressed: int = 0
    skipped: int = 0  # deliveries with nothing for their reader (per-reader copies)
    retried: int = 0  # deliveries put back for a later attempt
    duration_seconds: float = 0.0
    dry_run: bool = False
    would_send: int = 0  # dry run: copies rendered and counted
    totals: dict[str, int] = field(default_factory=dict)  # the ledger's counts afterwards
    stopped: str | None = None  # why this run stopped before the mailing was done (a signal)

    @property
    def left(self) -> int:
        """Deliveries still to send (retries and claims in doubt included)."""
        return sum(self.totals.get(state, 0) for state in UNFINISHED)

    def where(self) -> str:
        """Where the mailing stands, for an operator told that a send stopped early."""
        doubt = self.totals.get(DeliveryState.SENDING, 0)
        held = (f", {doubt} of them claimed by workers stopped mid-batch, free again once their "
                f"claim lease runs out") if doubt else ""
        return (f"mailing {self.mailing_id} has {self.left} deliveries left of {sum(self.totals.values())} "
                f"({self.totals.get(DeliveryState.SENT, 0)} sent){held}")

    @property
    def per_second(self) -> float:
        done = self.would_send if self.dry_run else self.sent
        return done / self.duration_seconds if self.duration_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "per_second": round(self.per_second, 1)}


def _summary(engine: sa.Engine, mailing_id: int, **kw: Any) -> SendSummary:
    with engine.connect() as conn:
        row = ledger.mailing(conn, mailing_id)
        totals = ledger.count(conn, mailing_id)
    return SendSummary(mailing_id, row.status, row.paused_reason, totals=totals, skipped=totals["skipped"], **kw)


Progress = Callable[[int, int], None]


@contextmanager
def _main_script_hidden() -> Iterator[None]:
    """A spawned process runs the parent's main script (as `__mp_main__`) before its target.
    Ours is the `newsletter` console script, which imports the whole CLI (Jinja2, MJML, lxml,
    the feed code: 25 MB and a second of start-up per worker), while the worker's code is all
    in `send.worker`; multiprocessing skips that step for a main without a file."""
    main = sys.modules["__main__"]
    path = main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        if path is not None:
            main.__file__ = path


def _spawn_ignoring_ctrl_c(processes: list[multiprocessing.process.BaseProcess]) -> None:
    """Start the workers with SIGINT ignored from their first instruction (a disposition that
    survives exec), so a Ctrl-C in the terminal, which reaches the whole process group, is the
    dispatcher's to decide on. Only the main thread may touch signal handlers."""
    with _main_script_hidden():
        if threading.current_thread() is not threading.main_thread():
            for p in processes:
                p.start()
            return
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for p in processes:
                p.start()
        finally:
            signal.signal(signal.SIGINT, previous)


def _start_workers(ctx: Any, config: Config, engine: sa.Engine, mailing: MailingContent, worker: str,
                   connections: int, shared: tuple[Any, Any, Any]) -> tuple[list[Any], list[Clerk]]:
    """Start the worker processes, one per core at most (more only adds memory), with the
    connections spread over them, and a clerk per connection (and per process, one for the
    copies) serving them here. `shared` is (rate bucket, events, stopping) for every worker."""
    n_processes = min(os.cpu_count() or 1, connections)
    spec = WorkerSpec(config, mailing, os.getpid())
    clerks: list[Clerk] = []
    processes = []
    theirs: list[Connection] = []
    for i in range(n_processes):
        links: list[tuple[str, Connection]] = []
        for _ in range(connections // n_processes + (i < connections % n_processes)):
            name = worker_name(f"{worker}-{len(clerks)}")
            ours, end = ctx.Pipe()
            clerks.append(Clerk(config, engine, mailing, name, ours))
            links.append((name, end))
        ours, copies_end = ctx.Pipe()
        clerks.append(Clerk(config, engine, mailing, None, ours))
        theirs += [end for _, end in links] + [copies_end]
        processes.append(ctx.Process(target=worker_main, name=f"send-{i}", daemon=True,
                                     args=(spec, links, copies_end, *shared)))
    for clerk in clerks:
        clerk.thread.start()
    try:
        _spawn_ignoring_ctrl_c(processes)
    finally:
        # The workers hold their ends now: a clerk hears its worker's death as the end of its pipe.
        for end in theirs:
            end.close()
    return processes, clerks


def send_mailing(config: Config, engine: sa.Engine, mailing_id: int, *, worker: str, dry_run: bool = False,
                 progress: Progress | None = None, stop: Stop | None = None) -> SendSummary:
    """Send a mailing's remaining deliveries and say what happened.

    `worker` names this sender in the ledger's claims. `progress(done, total)` is called as
    deliveries finish. `stop`, once requested, winds the send down (see the module's doc);
    the summary's `stopped` then says why it ended early.
    A paused, done or cancelled mailing is left as it is.
    """
    started = time.monotonic()
    stop = stop if stop is not None else Stop()
    if dry_run:
        count = render_remaining(config, engine, mailing_id)
        summary = _summary(engine, mailing_id, dry_run=True, would_send=count.would_send,
                           duration_seconds=time.monotonic() - started)
        summary.suppressed = count.suppressed
        return summary
    with engine.begin() as conn:
        row = ledger.mailing(conn, mailing_id)
        if row.status == MailingStatus.SENDING:
            ledger.start(conn, mailing_id, utcnow())
        counts = ledger.count(conn, mailing_id)
    if row.status != MailingStatus.SENDING:
        return _summary(engine, mailing_id, duration_seconds=time.monotonic() - started)
    if stop.requested:
        return _summary(engine, mailing_id, duration_seconds=time.monotonic() - started, stopped=stop.reason)
    total = sum(counts.values())
    done = total - sum(counts[state] for state in UNFINISHED)
    if progress:
        progress(done, total)

    with stop.sending():
        ctx = multiprocessing.get_context("spawn")
        t = config.transport
        bucket = TokenBucket(t.rate_per_second, t.burst, ctx) if t.rate_per_second > 0 else None
        events = ctx.Queue()
        stopping = ctx.Event()
        per_connection = min(t.batch_size, batch_limit(t.kind))
        connections = max(1, min(t.connections, math.ceil(counts[DeliveryState.PENDING] / per_connection)))
        mailing = MailingContent.from_row(row)
        processes, clerks = _start_workers(ctx, config, engine, mailing, worker, connections,
                                           (bucket, events, stopping))
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

        killed = False
        lease = timedelta(seconds=t.claim_lease_seconds)
        with ledger.heartbeat(engine, mailing_id, lambda: [c.name for c in clerks if c.name and c.serving], lease):
            while any(p.is_alive() for p in processes):
                drain(0.2)
                if not stop.requested:
                    continue
                stopping.set()
                if stop.at_once.is_set():
                    for p in processes:
                        p.kill()
                    killed = True
            while not events.empty():
                drain(0.05)
            for p in processes:
                p.join()
            for clerk in clerks:
                clerk.thread.join()
        crashed = [] if killed else [p for p in processes if p.exitcode not in (0, None)]
    with engine.begin() as conn:
        ledger.finish_if_done(conn, mailing_id, utcnow())
    summary = _summary(engine, mailing_id, sent=tally["sent"], failed=tally["failed"], retried=tally["retried"],
                       duration_seconds=time.monotonic() - started)
    if stop.requested and summary.status == MailingStatus.SENDING and summary.left:
        summary.stopped = f"{stop.reason}, at once" if killed else stop.reason
    summary.suppressed = summary.totals[DeliveryState.SUPPRESSED]
    if progress:
        progress(total - summary.left, total)
    if errors:
        raise NewsletterError(f"mailing {mailing_id}: {errors[0]}")
    if crashed:
        raise NewsletterError(f"mailing {mailing_id}: {len(crashed)} send worker(s) died (exit code "
                              f"{crashed[0].exitcode}); `newsletter send --resume` carries on")
    return summary
