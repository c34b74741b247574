"""The unattended job: collect on time, send each edition at its hour, never twice.

`Job` holds the steps; `Job.once` does what is due now and returns a `RunReport` (what
`newsletter run --once` runs from cron); `run_forever` drives the same steps with
APScheduler 3: a cycle (collect, feeds, due editions, unfinished sends) every
`[collect].interval_minutes`, and one job per edition firing at its slots.

State lives in the store, not in the scheduler: handled slots in `schedule_slots`,
mailings and their ledger. So a restart, a second scheduler on another machine, or cron
every few minutes all compute the same due slot and find it already handled.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import sqlalchemy as sa
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from newsletter import editions, locks, mailings, operations
from newsletter.bounces.fetch import fetch as fetch_bounces
from newsletter.collect import collect_all
from newsletter.config import Config, EditionConfig
from newsletter.errors import LockedError, NewsletterError
from newsletter.feeds import build_all
from newsletter.send.stop import Stop
from newsletter.slots import Schedule, SlotTrigger, due_slot, slot_id
from newsletter.states import MailingStatus
from newsletter.store import utcnow

log = logging.getLogger(__name__)

# Exit codes of `run --once`, for cron and monitors (documented in the README).
EXIT_OK = 0
EXIT_SOURCES = 3  # a source could not be collected, the feeds could not be built, or the bounce mailbox read
EXIT_SENDING = 4  # a send failed or a mailing is paused
EXIT_BOTH = 5

# The collect lease is renewed while collecting, so a crashed collector frees it within this.
COLLECT_LEASE_TTL = timedelta(minutes=2)


@dataclass
class EditionOutcome:
    edition: str
    slot: str | None = None
    mailing_id: int | None = None
    # not-due | no-news | created | locked | error
    outcome: str = "not-due"
    detail: str | None = None


@dataclass
class SendOutcome:
    mailing_id: int
    edition: str
    status: str  # the mailing's status afterwards, or "error", or "stopped" (a signal stopped this send)
    sent: int = 0
    failed: int = 0
    detail: str | None = None


@dataclass
class RunReport:
    sources: list[dict[str, Any]] = field(default_factory=list)
    feeds: int = 0
    feed_error: str | None = None
    collect_skipped: str | None = None  # why collecting was skipped (another process is collecting)
    editions: list[EditionOutcome] = field(default_factory=list)
    sends: list[SendOutcome] = field(default_factory=list)
    bounces: dict[str, Any] | None = None  # the bounce mailbox's fetch summary, when [bounces] is set
    bounce_error: str | None = None

    @property
    def source_failures(self) -> list[str]:
        """What could not be read: sources, the feeds they feed, and the bounce mailbox."""
        failures = [f"source {s['name']}: {s['error']}" for s in self.sources if s.get("error")]
        if self.feed_error:
            failures.append(f"feeds: {self.feed_error}")
        if self.bounce_error:
            failures.append(f"bounces: {self.bounce_error}")
        return failures

    @property
    def send_failures(self) -> list[str]:
        failures = [f"edition {e.edition}: {e.detail}" for e in self.editions if e.outcome == "error"]
        for s in self.sends:
            if s.status in ("error", "stopped", MailingStatus.PAUSED):
                failures.append(f"mailing {s.mailing_id} ({s.edition}) {s.status}: {s.detail}")
        return failures

    @property
    def exit_code(self) -> int:
        sources, sending = bool(self.source_failures), bool(self.send_failures)
        if sources and sending:
            return EXIT_BOTH
        return EXIT_SOURCES if sources else EXIT_SENDING if sending else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        data["failures"] = self.source_failures + self.send_failures
        return data


class Job:
    """The steps of the job against one store; `clock` is injectable so tests control time."""

    def __init__(self, config: Config, engine: sa.Engine, *, worker: str,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self.engine = engine
        self.worker = worker
        self.clock = clock
        self._sending: set[int] = set()
        self._again: set[int] = set()  # mailings triggered again while this process sent them
        self._sending_lock = threading.Lock()
        # SIGTERM / Ctrl-C: sends wind down (see send.stop) and no new one starts.
        self.stop = Stop()
        self.stopped: list[SendOutcome] = []

    def collect(self, report: RunReport) -> None:
        """Collect every source, then rebuild the feeds; skipped when another process is collecting."""
        owner = locks.owner_id(self.worker)
        try:
            with locks.lease(self.engine, "collect", owner, COLLECT_LEASE_TTL, heartbeat=True):
                results = collect_all(self.config, self.engine)
                report.sources = [r.as_dict() for r in results]
                for failed in (r for r in results if r.error):
                    log.warning("source failed", extra={"source": failed.name, "detail": failed.error})
                log.info("collect done", extra={
                    "sources": len(results), "new": sum(r.new for r in results),
                    "updated": sum(r.updated for r in results), "failed": sum(1 for r in results if r.error)})
                try:
                    report.feeds = len(build_all(self.config, self.engine))
                except (NewsletterError, OSError) as exc:
                    report.feed_error = str(exc)
                    log.error("feeds failed", extra={"detail": str(exc)})
                else:
                    log.info("feeds built", extra={"files": report.feeds})
        except LockedError as exc:
            report.collect_skipped = str(exc)
            log.info("lock held elsewhere", extra={"lock": "collect", "detail": str(exc)})

    def fetch_bounces(self, report: RunReport) -> None:
        """Read the bounce mailbox, when there is one, before deciding who gets the next copies."""
        if self.config.bounces is None:
            return
        try:
            summary = fetch_bounces(self.config, self.engine)
        except NewsletterError as exc:
            report.bounce_error = str(exc)
            log.error("bounce mailbox failed", extra={"detail": str(exc)})
            return
        report.bounces = summary.as_dict()
        if summary.errors:
            report.bounce_error = f"{len(summary.errors)} message(s) not processed; first: {summary.errors[0]}"
        log.info("bounces fetched", extra={"read": summary.read, "suppressed": summary.suppressed})

    def due(self, edition: EditionConfig, now: datetime) -> datetime | None:
        """The edition's slot to run now, if any (see `slots.due_slot`).

        A slot that had no news stays due for its grace time (news collected meanwhile still
        goes out for it); slots that passed their grace time unseen are logged once, and the
        newest of them is recorded as missed.
        """
        schedule = Schedule.of(edition)
        grace = timedelta(minutes=edition.grace_minutes)
        with self.engine.begin() as conn:
            seen = editions.last_slot(conn, edition.name)
            sent = editions.last_slot(conn, edition.name, "mailing")
            missed = schedule.between(seen, now - grace) if seen is not None else []
            if missed:
                # The newest one stands for them all: the next run counts from there.
                editions.record_slot(conn, edition.name, slot_id(missed[-1]), now, "missed")
        if missed:
            log.warning("slots missed beyond grace", extra={
                "edition": edition.name, "missed": len(missed), "first": slot_id(missed[0]),
                "grace_minutes": edition.grace_minutes})
        return due_slot(schedule, last=sent, now=now, grace=grace)

    def run_edition(self, name: str, report: RunReport, now: datetime | None = None) -> int | None:
        """Create the edition's mailing for its due slot, if one is due and there is news."""
        now = now or self.clock()
        edition = self.config.edition(name)
        outcome = EditionOutcome(edition=name)
        report.editions.append(outcome)
        slot = self.due(edition, now)
        if slot is None:
            return None
        outcome.slot = slot_id(slot)
        try:
            outcome.mailing_id = editions.prepare_mailing(self.config, self.engine, name, slot=outcome.slot, now=now)
        except LockedError as exc:
            outcome.outcome, outcome.detail = "locked", str(exc)
            return None
        except NewsletterError as exc:
            outcome.outcome, outcome.detail = "error", str(exc)
            log.error("mailing failed", extra={"edition": name, "slot": outcome.slot, "detail": str(exc)})
            return None
        outcome.outcome = "created" if outcome.mailing_id is not None else "no-news"
        return outcome.mailing_id

    def send(self, mailing_id: int, edition: str, report: RunReport) -> None:
        """Send the mailing's remaining deliveries, unless a thread of this process already is.

        A trigger that comes while this process sends the mailing is not lost: the sending thread
        takes one more pass when it finishes (an operator resumed it while the paused send was
        still winding down). Other processes may send it at the same time: the ledger hands each
        delivery to one.
        """
        if self.stop.requested:
            return
        with self._sending_lock:
            if mailing_id in self._sending:
                self._again.add(mailing_id)
                log.info("already sending", extra={"mailing_id": mailing_id, "edition": edition})
                return
            self._sending.add(mailing_id)
        try:
            while True:
                summary = operations.deliver(self.config, self.engine, mailing_id, worker=self.worker,
                                             stop=self.stop)
                with self._sending_lock:
                    # Decided under the lock that a new trigger takes, so none falls in between.
                    if mailing_id not in self._again or self.stop.requested or summary.stopped:
                        self._sending.discard(mailing_id)
                        self._again.discard(mailing_id)
                        break
                    self._again.discard(mailing_id)
        except BaseException as exc:
            with self._sending_lock:
                self._sending.discard(mailing_id)
                self._again.discard(mailing_id)
            if not isinstance(exc, NewsletterError):
                raise
            report.sends.append(SendOutcome(mailing_id, edition, "error", detail=str(exc)))
            log.error("send failed", extra={"mailing_id": mailing_id, "edition": edition, "detail": str(exc)})
            return
        if summary.stopped:
            outcome = SendOutcome(mailing_id, edition, "stopped", summary.sent, summary.failed,
                                  f"{summary.stopped}: {summary.where()}")
            self.stopped.append(outcome)
        else:
            outcome = SendOutcome(mailing_id, edition, summary.status, summary.sent, summary.failed,
                                  summary.paused_reason)
        report.sends.append(outcome)
        log.info("send finished", extra={
            "mailing_id": mailing_id, "edition": edition, "status": summary.status, "sent": summary.sent,
            "failed": summary.failed, "retried": summary.retried, "seconds": round(summary.duration_seconds, 2)})

    def send_unfinished(self, report: RunReport) -> None:
        """Carry on every mailing still sending (new ones, interrupted ones, retries now due).

        Paused mailings wait for an operator (`mailings resume` or `send EDITION --resume`).
        """
        with self.engine.connect() as conn:
            rows = mailings.sending(conn)
        for row in rows:
            if self.stop.requested:
                break
            self.send(row.id, row.edition, report)

    def run_edition_and_send(self, name: str) -> RunReport:
        """What an edition's scheduled job does at its slot."""
        report = RunReport()
        mailing_id = self.run_edition(name, report)
        if mailing_id is not None:
            self.send(mailing_id, name, report)
        return report

    def once(self, now: datetime | None = None) -> RunReport:
        """Collect, build the feeds, create what is due, send everything unfinished."""
        report = RunReport()
        self.collect(report)
        self.fetch_bounces(report)
        now = now or self.clock()
        for edition in self.config.editions:
            self.run_edition(edition.name, report, now)
        self.send_unfinished(report)
        return report


    def wait_for_sends(self) -> None:
        """Return once no send of this job runs (they wind down when `stop` is requested)."""
        while True:
            with self._sending_lock:
                if not self._sending:
                    return
            self.stop.at_once.wait(0.1)


def run_forever(job: Job) -> None:
    """Run the job on its schedules until SIGTERM or SIGINT; returns after a clean shutdown.

    The first signal stops the scheduler and winds the sends in progress down (they finish and
    record what is in flight); a second one stops them at once. `job.stopped` lists the sends
    that ended early.
    """
    config = job.config
    scheduler = BlockingScheduler(timezone=timezone.utc)
    # The first cycle starts at once: it collects and catches up on a slot missed while down.
    scheduler.add_job(
        job.once, IntervalTrigger(minutes=config.collect.interval_minutes, timezone=timezone.utc),
        id="cycle", name="collect, feeds, due editions, unfinished sends", next_run_time=job.clock(),
        coalesce=True, max_instances=1, misfire_grace_time=config.collect.interval_minutes * 60,
    )
    for edition in config.editions:
        scheduler.add_job(
            job.run_edition_and_send, SlotTrigger(Schedule.of(edition)), args=[edition.name],
            id=f"edition:{edition.name}", name=f"edition {edition.name}",
            coalesce=True, max_instances=1, misfire_grace_time=edition.grace_minutes * 60,
        )

    def stop(signum: int, _frame: object) -> None:
        first = not job.stop.requested
        job.stop.request(signum)
        if first:
            log.info("scheduler stopping", extra={"signal": signal.Signals(signum).name})
            scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("scheduler started", extra={
        "editions": [e.name for e in config.editions], "interval_minutes": config.collect.interval_minutes})
    scheduler.start()
    job.wait_for_sends()
