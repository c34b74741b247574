"""The dispatcher: start worker processes on a mailing, gather what they report, sum it up.

The work itself is elsewhere: `send.worker` (the claim, hand over, record loop), `send.retry`
(what an answer means), `send.envelopes` (what a transport takes), `send.dryrun`.

What a crash can duplicate: a worker that dies after the transport accepted a batch and before
the ledger recorded it leaves that batch `sending`; a resume sends it again. That window is one
batch per worker: `Transport.batch_limit` messages (20 for SMTP, one API call for providers,
capped by `[transport].batch_size`).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import sqlalchemy as sa

from newsletter.config import Config
from newsletter.errors import NewsletterError
from newsletter.send import ledger
from newsletter.send.dryrun import render_remaining
from newsletter.send.ratelimit import TokenBucket
from newsletter.send.transports import batch_limit
from newsletter.send.worker import WorkerSpec, worker_main
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

    @property
    def per_second(self) -> float:
        done = self.would_send if self.dry_run else self.sent
        return done / self.duration_seconds if self.duration_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "per_second": round(self.per_second, 1)}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _summary(engine: sa.Engine, mailing_id: int, **kw: Any) -> SendSummary:
    with engine.connect() as conn:
        row = ledger.mailing(conn, mailing_id)
        totals = ledger.count(conn, mailing_id)
    return SendSummary(mailing_id, row.status, row.paused_reason, totals=totals, skipped=totals["skipped"], **kw)


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
        count = render_remaining(config, engine, mailing_id)
        summary = _summary(engine, mailing_id, dry_run=True, would_send=count.would_send,
                           duration_seconds=time.monotonic() - started)
        summary.suppressed = count.suppressed
        return summary
    with engine.begin() as conn:
        row = ledger.mailing(conn, mailing_id)
        if row.status == "sending":
            ledger.release_dead_claims(conn, mailing_id, _pid_alive)
            ledger.start(conn, mailing_id, utcnow())
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
    spec = WorkerSpec(config, mailing_id, worker, os.getpid())
    processes = [
        ctx.Process(target=worker_main, name=f"send-{i}", daemon=True,
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
