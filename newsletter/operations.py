"""The operations layer: what operators do, with one behaviour and one set of errors for every caller.

The CLI, the operator API, the scheduler and the console call these and nothing below them:
send now, resume, pause, test send, draft and preview. Each checks the actor's role
(`ForbiddenError`) and records what it did in the audit log.

A paused mailing is the operator's (or the failure guard's) decision, and undoing it is a
decision of its own: "send now" on an edition whose mailing is paused refuses with a
`MailingError` that says how to resume it; only `resume` (or `send EDITION --resume`, which
is resume and send in one) lets it send again.

Errors: `ConfigError` (no such edition), `MailingError` (no such mailing, `not_found`; or its
state does not allow the action), `ForbiddenError` (the role does not allow it),
`OperationError` (a bad argument, such as a malformed address), `LockedError` (another
process is creating the edition's mailing), `TransportError` (a test copy was refused).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from newsletter import audit, briefs, contents, editions, mailings
from newsletter.audit import Actor
from newsletter.briefs import Brief
from newsletter.config import Config, EditionConfig
from newsletter.digest import MailingContent, MessageFactory
from newsletter.digest.i18n import messages
from newsletter.errors import MailingError, NewsletterError, SubscriberError
from newsletter.recipients import Recipient
from newsletter.send.dispatch import Progress, SendSummary, send_mailing
from newsletter.send.stop import Stop
from newsletter.send.testcopy import send_test
from newsletter.states import MailingStatus
from newsletter.store import utcnow
from newsletter.subscribers import csvfile, registry
from newsletter.subscribers.audience import count as audience_size
from newsletter.subscribers.address import normalise
from newsletter.tracking import plot, report

SAMPLE_EMAIL = "reader@example.org"


class OperationError(NewsletterError):
    """An argument of an operation is wrong (the message names it and says what to give)."""


@dataclass(frozen=True)
class SendTarget:
    """The mailing "send now" or "resume" picked for an edition."""

    edition: str
    mailing_id: int | None  # None: no news, nothing to send
    created: bool = False  # a new mailing, rather than one that was already sending
    resumed: bool = False  # it was paused and has been resumed
    paused_reason: str | None = None  # why it had been paused (when resumed)


def _paused_refusal(row: sa.Row) -> MailingError:
    return MailingError(
        f"mailing {row.id} of {row.edition} is paused ({row.paused_reason or 'no reason given'}): resume it first "
        f"(`newsletter mailings resume {row.id}`, or `newsletter send {row.edition} --resume` to resume and send)")


def send_now(config: Config, engine: sa.Engine, edition_name: str, actor: Actor, *,
             now: datetime | None = None) -> SendTarget:
    """The mailing to send now: the edition's one still sending, else a new one when there is news.

    Refuses (MailingError) when the edition's mailing is paused. Does not send: the caller
    hands the id to `deliver` (in the foreground, or a background thread of `serve`).
    """
    actor.require("send")
    edition = config.edition(edition_name)
    with engine.connect() as conn:
        row = mailings.unfinished(conn, edition.name)
    if row is not None and row.status == MailingStatus.PAUSED:
        raise _paused_refusal(row)
    if row is not None:
        target = SendTarget(edition.name, row.id)
    else:
        now = now or utcnow()
        mailing_id = editions.prepare_mailing(config, engine, edition.name, slot=editions.manual_slot(now), now=now)
        target = SendTarget(edition.name, mailing_id, created=mailing_id is not None)
    with engine.begin() as conn:
        audit.record(conn, actor, "send_now", f"edition {edition.name}",
                     "no news: nothing to send" if target.mailing_id is None else
                     f"mailing {target.mailing_id} {'created' if target.created else 'carried on'}")
    return target


def resume_edition(config: Config, engine: sa.Engine, edition_name: str, actor: Actor) -> SendTarget:
    """The edition's unfinished mailing, resumed when paused; MailingError when it has none."""
    actor.require("resume")
    edition = config.edition(edition_name)
    with engine.begin() as conn:
        row = mailings.unfinished(conn, edition.name)
        if row is None:
            raise MailingError(f"edition {edition.name!r} has no unfinished mailing to resume", not_found=True)
        resumed = row.status == MailingStatus.PAUSED
        if resumed:
            mailings.resume(conn, row.id)
        audit.record(conn, actor, "resume", f"mailing {row.id}", "resumed" if resumed else "carried on")
    return SendTarget(edition.name, row.id, resumed=resumed, paused_reason=row.paused_reason if resumed else None)


def deliver(config: Config, engine: sa.Engine, mailing_id: int, *, worker: str, dry_run: bool = False,
            progress: Progress | None = None, stop: Stop | None = None) -> SendSummary:
    """Send (or with `dry_run` render and count) the mailing's remaining deliveries; a paused or
    finished mailing is left as it is. The send's decision was taken by `send_now`, `resume` or
    the schedule, and recorded there."""
    return send_mailing(config, engine, mailing_id, worker=worker, dry_run=dry_run, progress=progress, stop=stop)


def pause(engine: sa.Engine, mailing_id: int, actor: Actor, reason: str = "") -> dict[str, Any]:
    """Stop a sending mailing at its senders' next batch; MailingError when it is not sending."""
    actor.require("pause")
    reason = reason or f"paused by {actor.name}"
    with engine.begin() as conn:
        mailing = mailings.pause(conn, mailing_id, reason)
        audit.record(conn, actor, "pause", f"mailing {mailing_id}", reason)
    return mailing


def resume(engine: sa.Engine, mailing_id: int, actor: Actor) -> dict[str, Any]:
    """Let a paused mailing send again (the scheduler, `serve` or `send --resume` sends it)."""
    actor.require("resume")
    with engine.begin() as conn:
        mailing = mailings.resume(conn, mailing_id)
        audit.record(conn, actor, "resume", f"mailing {mailing_id}")
    return mailing


def mailing(engine: sa.Engine, mailing_id: int) -> dict[str, Any]:
    """The mailing with its counts, its failures grouped by reason and, while sending, an ETA."""
    with engine.connect() as conn:
        found = mailings.get(conn, mailing_id)
        found["failures"] = [{"reason": r, "count": n} for r, n in mailings.failures(conn, mailing_id)]
    found["eta"] = eta(found, utcnow())
    return found


def engagement(engine: sa.Engine, mailing_id: int) -> dict[str, Any]:
    """The mailing's clicks per brief and kind of link, against the edition's previous ten (`report`)."""
    with engine.connect() as conn:
        return report.mailing_report(conn, mailing_id)


def engagement_chart(engine: sa.Engine, mailing_id: int) -> bytes | None:
    """The report's trend and per-brief bars as SVG; None without matplotlib (`newsletter[plots]`)."""
    figures = engagement(engine, mailing_id)
    buffer = io.BytesIO()
    try:
        plot.draw(buffer, f"mailing {mailing_id} ({figures['edition']}) and the ones before it",
                  report.with_previous(figures), figures["briefs"], image_format="svg")
    except NewsletterError:
        return None
    return buffer.getvalue()


def eta(mailing: dict[str, Any], now: datetime) -> str | None:
    """When a sending mailing should finish at the pace it has kept so far (ISO time), else None."""
    counts = mailing["deliveries"]
    left = counts["pending"] + counts["sending"]
    done = counts["sent"] + counts["failed"]
    if mailing["status"] != MailingStatus.SENDING or not mailing.get("started_at") or not left or not done:
        return None
    elapsed = (now - datetime.fromisoformat(mailing["started_at"])).total_seconds()
    if elapsed <= 0:
        return None
    return (now + timedelta(seconds=left * elapsed / done)).isoformat()


def in_progress(engine: sa.Engine) -> list[dict[str, Any]]:
    """Mailings sending or paused, with their counts and ETA."""
    now = utcnow()
    with engine.connect() as conn:
        rows = mailings.in_progress(conn)
    return [{**m, "eta": eta(m, now)} for m in rows]


def recent(engine: sa.Engine, limit: int = 20) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return mailings.recent(conn, limit)


@dataclass(frozen=True)
class Current:
    """The mailing an edition's test copy and preview show: stored, or a draft of the next one."""

    content: MailingContent
    stored: bool  # False: a draft, rendered and stored nowhere


def current(config: Config, engine: sa.Engine, edition: EditionConfig, now: datetime | None = None) -> Current | None:
    """The mailing a reader would get next: the edition's unfinished one, else a draft of the one
    "send now" would create, else (no news) its newest; None when it has none and no news."""
    with engine.connect() as conn:
        row = mailings.unfinished(conn, edition.name)
        if row is None:
            content = editions.draft(conn, config, edition, now or utcnow())
            if content is not None:
                return Current(content, False)
            row = mailings.newest(conn, edition.name)
    return Current(MailingContent.from_row(row), True) if row is not None else None


@dataclass(frozen=True)
class NextMailing:
    """The edition's current mailing (see `current`) as a sample reader gets it, with its briefs."""

    preview: Preview
    briefs: list[Brief]  # carried, in the mailing's order
    waiting: int  # new briefs it does not carry (left for a later mailing)


def next_mailing(config: Config, engine: sa.Engine, edition_name: str, now: datetime | None = None) -> NextMailing | None:
    edition = config.edition(edition_name)
    now = now or utcnow()
    found = current(config, engine, edition, now)
    if found is None:
        return None
    shown = _personalised(config, edition.name, found, sample_reader(edition.language))
    with engine.connect() as conn:
        carried = briefs.by_ids(conn, list(found.content.brief_ids))
        selection = editions.next_selection(conn, edition, now)
    waiting = selection.waiting if not found.stored else len(selection.briefs) + selection.waiting
    return NextMailing(shown, carried, waiting)


def _personalised(config: Config, edition: str, found: Current, recipient: Recipient) -> Preview:
    # A preview is a test copy: its message never carries the Message-ID of a real delivery.
    factory = MessageFactory(config, found.content, test=True)
    html, text = factory.parts(recipient)
    return Preview(edition, found.content, found.stored, recipient, html, text, factory.build(recipient))


def draft(config: Config, engine: sa.Engine, edition_name: str, now: datetime | None = None) -> MailingContent | None:
    """The mailing "send now" would create now, rendered, stored nowhere; None without news."""
    edition = config.edition(edition_name)
    with engine.connect() as conn:
        return editions.draft(conn, config, edition, now or utcnow())


def address(value: str, field_name: str) -> str:
    """A normalised email address, or OperationError naming the field and what was wrong."""
    try:
        return normalise(value)
    except SubscriberError as exc:
        raise OperationError(f"{field_name}: {exc}") from exc


@dataclass(frozen=True)
class CopyResult:
    edition: str
    to: str
    current: Current | None  # None: no mailing yet and no news, nothing sent
    bytes: int = 0
    sent: bool = False
    provider_message_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        content = self.current.content if self.current else None
        return {"edition": self.edition, "to": self.to,
                "mailing_id": content.id if self.current and self.current.stored else None,
                "draft": bool(self.current) and not self.current.stored,
                "briefs": len(content.brief_ids) if content else 0, "subject": content.subject if content else None,
                "bytes": self.bytes, "sent": int(self.sent), "provider_message_id": self.provider_message_id}


def send_test_copy(config: Config, engine: sa.Engine, edition_name: str, email: str, actor: Actor, *,
              dry_run: bool = False, field_name: str = "email", now: datetime | None = None) -> CopyResult:
    """One copy of the edition's current mailing (see `current`) to `email`, outside the ledger.

    With `dry_run` the copy is built and measured, not sent. Nothing is stored but the audit entry.
    """
    actor.require("test_send")
    edition = config.edition(edition_name)
    to = address(email, field_name)
    found = current(config, engine, edition, now)
    if found is None:
        return CopyResult(edition.name, to, None)
    if dry_run:
        size = len(MessageFactory(config, found.content, test=True).build(Recipient(None, to)))
        return CopyResult(edition.name, to, found, bytes=size)
    result = send_test(config, found.content, to)
    what = f"mailing {found.content.id}" if found.stored else "a draft of the next mailing"
    with engine.begin() as conn:
        audit.record(conn, actor, "test_send", f"edition {edition.name}", f"{what} to {to}")
    return CopyResult(edition.name, to, found, sent=True, provider_message_id=result.provider_message_id)


@dataclass(frozen=True)
class Preview:
    """A mailing as one reader gets it: the parts with their values filled in, and the whole message."""

    edition: str
    content: MailingContent
    stored: bool
    recipient: Recipient
    html: str
    text: str
    message: bytes


def preview(config: Config, engine: sa.Engine, edition_name: str, *, mailing_id: int | None = None,
            subscriber: str | None = None, now: datetime | None = None) -> Preview:
    """The next mailing (a draft) or the given stored one, personalised for a subscriber or a sample reader."""
    edition = config.edition(edition_name)
    with engine.connect() as conn:
        if mailing_id is not None:
            row = mailings.row(conn, mailing_id)
            if row.edition != edition.name:
                raise MailingError(f"mailing {mailing_id} belongs to edition {row.edition!r}, not {edition.name!r}")
            content = MailingContent.from_row(row)
        else:
            content = editions.draft(conn, config, edition, now or utcnow())
            if content is None:
                raise MailingError(f"edition {edition.name!r} has no new briefs to send yet; "
                                   "preview an existing mailing with --mailing ID", not_found=True)
        recipient, countries = _reader(conn, subscriber, edition)
        if subscriber:
            # Their own copy: only the briefs about the countries they chose.
            content = contents.reader_copy(conn, config, edition, content, recipient.id, countries)
    return _personalised(config, edition.name, Current(content, mailing_id is not None), recipient)


def sample_reader(language: str) -> Recipient:
    return Recipient(None, SAMPLE_EMAIL, messages(language)["sample_name"], language)


def _reader(conn: sa.Connection, email: str | None, edition: EditionConfig) -> tuple[Recipient, list[str]]:
    """The reader a preview is for, and the countries they chose (none for the sample reader)."""
    if not email:
        return sample_reader(edition.language), []
    found = registry.find(conn, address(email, "--subscriber"))
    if found is None:
        raise OperationError(f"--subscriber: no subscriber {normalise(email)!r}; `newsletter subscribers add` adds one")
    return Recipient(found.id, found.email, found.name, found.language), list(found.countries or ())


@dataclass
class SendPlan:
    """What "send now" would do, for a confirmation: which mailing, to how many, with which briefs."""

    edition: str
    mailing_id: int | None  # the unfinished mailing it carries on; None: it creates one
    status: str | None  # that mailing's status (sending | paused)
    subscribers: int  # deliveries still to go (carrying on) or readers the new mailing would have
    briefs: list[Brief] = field(default_factory=list)
    waiting: int = 0  # new briefs over max_items, left for the mailing after
    new_briefs: int = 0  # every new brief, carried or waiting (below min_items none is carried)


def send_plan(config: Config, engine: sa.Engine, edition_name: str, now: datetime | None = None) -> SendPlan:
    edition = config.edition(edition_name)
    now = now or utcnow()
    with engine.connect() as conn:
        row = mailings.unfinished(conn, edition.name)
        if row is not None:
            counts = mailings.get(conn, row.id)["deliveries"]
            return SendPlan(edition.name, row.id, row.status, counts["pending"] + counts["sending"],
                            briefs.by_ids(conn, list(row.brief_ids)))
        selection = editions.next_selection(conn, edition, now)
        carried = selection.briefs if len(selection.briefs) >= edition.min_items else []
        countries = {c for b in carried for c in b.countries}
        readers = audience_size(conn, edition, countries) if carried else 0
    return SendPlan(edition.name, None, None, readers, carried, selection.waiting,
                    len(selection.briefs) + selection.waiting)


def audit_log(engine: sa.Engine, limit: int = 50) -> list[dict[str, Any]]:
    """The newest operator actions, newest first."""
    with engine.connect() as conn:
        return audit.recent(conn, limit)


def find_subscribers(engine: sa.Engine, fragment: str, actor: Actor, limit: int = 50) -> list[dict[str, Any]]:
    """Subscribers whose address contains `fragment`: id, email, status, language."""
    actor.require("subscribers")
    if not fragment.strip():
        return []
    with engine.connect() as conn:
        rows = registry.search(conn, fragment, limit)
    return [{"id": r.id, "email": r.email, "status": r.status, "language": r.language} for r in rows]


def subscriber(engine: sa.Engine, subscriber_id: int, actor: Actor) -> dict[str, Any]:
    """Everything held about one subscriber: status, consent records, events, deliveries."""
    actor.require("subscribers")
    with engine.connect() as conn:
        return {"id": subscriber_id, **registry.data(conn, subscriber_id)}


def suppress_subscriber(engine: sa.Engine, subscriber_id: int, actor: Actor) -> dict[str, Any]:
    """Take the subscriber's address off the list for good (suppressed, reason `manual`)."""
    actor.require("subscribers")
    with engine.begin() as conn:
        row = registry.get(conn, subscriber_id)
        if row is None:
            raise OperationError(f"no subscriber with id {subscriber_id}")
        registry.remove(conn, row.email)
        audit.record(conn, actor, "suppress", f"subscriber {subscriber_id}", row.email)
        return {"id": subscriber_id, **registry.data(conn, subscriber_id)}


def export_subscribers(engine: sa.Engine, actor: Actor) -> str:
    """Every subscriber as the CSV `subscribers export` writes."""
    actor.require("subscribers")
    out = io.StringIO()
    with engine.begin() as conn:
        count = csvfile.write_csv(csvfile.export_records(conn), out)
        audit.record(conn, actor, "export", "subscribers", f"{count} rows")
    return out.getvalue()
