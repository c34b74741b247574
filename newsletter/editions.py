"""Editions become mailings: which briefs a mailing carries, and creating it exactly once.

A mailing carries the briefs of its edition's language (and countries, when the edition
names some) first stored after the previous mailing's cutoff: `briefs.first_seen_at`, not
the published time, so a brief collected late, or while a send was running, goes in the
next mailing instead of being lost. At most `max_items` go in one mailing: when more
arrived, the ones stored first go now and the rest wait for the next mailing (nothing is
dropped; status shows how many wait). Inside the mailing, the newest published come first.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from newsletter import briefs as briefs_module
from newsletter import contents, locks
from newsletter.briefs import Brief
from newsletter.config import Config, EditionConfig
from newsletter.countries import Countries
from newsletter.digest import MailingContent, render_mailing
from newsletter.errors import LockedError
from newsletter.locks import Lease, owner_id
from newsletter.send import ledger
from newsletter.slots import parse_slot
from newsletter.states import MailingStatus
from newsletter.store import schema, utcnow
from newsletter.subscribers.audience import groups, planned_rows
from newsletter.tracking import links as tracked_links

log = logging.getLogger(__name__)

# A collect's transaction can commit a brief whose first_seen_at is a little older than a
# cutoff taken meanwhile (PostgreSQL reads only what is committed). Each selection looks
# this far behind the cutoff too, skipping what the edition's mailings already carried.
LATE_COMMIT_WINDOW = timedelta(hours=1)
# The lease only has to outlive the gap before the mailing's transaction renews it in place
# (from then on the transaction's own locks fence it); a crashed holder frees it this soon.
LEASE_TTL = timedelta(minutes=2)
# How long a second caller waits for the first to finish creating the mailing.
LEASE_WAIT_SECONDS = 60.0
# Slots of mailings made by "send now" (`parse_slot` gives None for them: not on the schedule).
MANUAL_SLOT_PREFIX = "manual-"


@dataclass(frozen=True)
class Selection:
    briefs: list[Brief]  # what the mailing carries, newest published first
    cutoff: datetime  # first_seen_at high-water mark the mailing covers
    waiting: int  # new briefs left for the next mailing (over max_items)


def _carried_ids(conn: sa.Connection, edition: str, since: datetime) -> set[int] | None:
    """Brief ids carried by the edition's mailings with a cutoff after `since`; None when it has none at all."""
    m = schema.mailings
    if conn.execute(sa.select(m.c.id).where(m.c.edition == edition).limit(1)).first() is None:
        return None
    rows = conn.execute(sa.select(m.c.brief_ids).where(m.c.edition == edition, m.c.cutoff > since))
    return {i for (ids,) in rows for i in ids}


def _wanted_countries(edition: EditionConfig) -> set[str]:
    vocabulary = Countries()
    return {vocabulary.match(c) or c.lower() for c in edition.countries}


def select(conn: sa.Connection, edition: EditionConfig, *, after: datetime, until: datetime) -> Selection:
    """The briefs a mailing of `edition` would carry now, its cutoff, and how many wait."""
    carried = _carried_ids(conn, edition.name, after - LATE_COMMIT_WINDOW)
    since = after if carried is None else after - LATE_COMMIT_WINDOW
    candidates = [
        b for b in briefs_module.seen_between(conn, language=edition.language, after=since, until=until)
        if not carried or b.id not in carried
    ]
    wanted = _wanted_countries(edition)
    if wanted:
        candidates = [b for b in candidates if wanted.intersection(b.countries)]
    candidates.sort(key=lambda b: (b.first_seen_at, b.id))
    taken = candidates[: edition.max_items]
    # With overflow the cutoff stops at the last brief taken: the rest are found next time.
    cutoff = taken[-1].first_seen_at if len(candidates) > len(taken) else until
    taken.sort(key=lambda b: (b.published_at, b.id), reverse=True)
    return Selection(briefs=taken, cutoff=cutoff, waiting=len(candidates) - len(taken))


def select_briefs(conn: sa.Connection, edition: EditionConfig, *, after: datetime, until: datetime) -> list[Brief]:
    """The briefs a mailing of `edition` carries, first stored in (after, until], newest published first."""
    return select(conn, edition, after=after, until=until).briefs


def previous_cutoff(conn: sa.Connection, edition: str) -> datetime | None:
    m = schema.mailings
    return conn.execute(sa.select(sa.func.max(m.c.cutoff)).where(m.c.edition == edition)).scalar_one()


def window_start(conn: sa.Connection, edition: EditionConfig, now: datetime) -> datetime:
    """Where the next mailing's briefs start: the last cutoff, or `lookback_hours` ago for a new edition."""
    return previous_cutoff(conn, edition.name) or now - timedelta(hours=edition.lookback_hours)


@contextmanager
def _edition_lease(engine: sa.Engine, edition: str) -> Iterator[Lease]:
    """The edition's lease, waiting a while for another holder who is probably creating this very mailing."""
    name = f"edition:{edition}"
    owner = owner_id("prepare")
    deadline = time.monotonic() + LEASE_WAIT_SECONDS
    while True:
        try:
            expires_at = locks.acquire(engine, name, owner, LEASE_TTL)
            break
        except (LockedError, sa.exc.OperationalError) as exc:
            # OperationalError: SQLite stayed busy past its timeout while the holder writes.
            if time.monotonic() > deadline:
                log.warning("lock held elsewhere", extra={"lock": name, "detail": str(exc)})
                if isinstance(exc, LockedError):
                    raise
                raise LockedError(f"lock {name!r}: the store stayed busy for {LEASE_WAIT_SECONDS:.0f} s") from exc
            time.sleep(0.2)
    try:
        yield Lease(engine, name, owner, LEASE_TTL, expires_at)
    finally:
        locks.release(engine, name, owner)


def manual_slot(now: datetime) -> str:
    """The slot of a mailing an operator asked for at `now` ("send now"), outside the schedule."""
    return f"{MANUAL_SLOT_PREFIX}{now.isoformat()}"


def last_slot(conn: sa.Connection, edition: str, *outcomes: str) -> datetime | None:
    """The newest scheduled slot the edition recorded, of any outcome or of the given ones."""
    s = schema.schedule_slots
    query = sa.select(sa.func.max(s.c.due_at)).where(s.c.edition == edition)
    if outcomes:
        query = query.where(s.c.outcome.in_(outcomes))
    return conn.execute(query).scalar_one()


def _existing(conn: sa.Connection, edition: str, slot: str) -> int | None:
    m = schema.mailings
    return conn.execute(sa.select(m.c.id).where(m.c.edition == edition, m.c.slot == slot)).scalar()


def record_slot(conn: sa.Connection, edition: str, slot: str, now: datetime, outcome: str,
                mailing_id: int | None = None) -> None:
    """Note what came of a scheduled slot: mailing, no-news or missed (for status and the scheduler)."""
    due_at = parse_slot(slot)
    if due_at is None:
        return  # a manual send is not a scheduled slot: the schedule carries on as before
    values = {"handled_at": now, "outcome": outcome, "mailing_id": mailing_id}
    s = schema.schedule_slots
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(s).values(
        edition=edition, slot=slot, due_at=due_at, **values)
    conn.execute(insert.on_conflict_do_update(index_elements=[s.c.edition, s.c.slot], set_=values))


def _create(conn: sa.Connection, config: Config, edition: EditionConfig, slot: str, now: datetime,
            selection: Selection) -> tuple[int, int]:
    m = schema.mailings
    mailing_id = conn.execute(
        m.insert().values(
            edition=edition.name, slot=slot, language=edition.language, status=MailingStatus.SENDING, subject="",
            preheader="", brief_ids=[b.id for b in selection.briefs], cutoff=selection.cutoff, created_at=now,
        )
    ).inserted_primary_key[0]
    book = tracked_links.LinkBook.for_mailing(config, mailing_id, selection.briefs) if config.tracking.clicks else None
    rendered = contents.render_copy(config, edition, selection.briefs, mailing_id=mailing_id, created_at=now,
                                    book=book)
    conn.execute(
        m.update().where(m.c.id == mailing_id).values(
            subject=rendered.subject, preheader=rendered.preheader, html=rendered.html, text=rendered.text,
            content_hash=rendered.content_hash,
        )
    )
    # Each reader's copy: the briefs about their countries, each distinct set rendered once,
    # decided per group of readers who chose alike; the store writes the deliveries itself,
    # meanwhile a thread renders the copies (the insert waits on the store, with the GIL free).
    copies = contents.Copies(config, edition, mailing_id, now, selection.briefs, book)
    plans = copies.plans(groups(conn, edition))
    with ThreadPoolExecutor(1, thread_name_prefix=f"copies of mailing {mailing_id}") as renderer:
        rendering = renderer.submit(copies.render)
        with planned_rows(conn, edition, plans) as rows:
            added = ledger.record_planned(conn, mailing_id, rows)
        contents.save(conn, rendering.result())
    if book is not None:
        tracked_links.save(conn, book)
    return mailing_id, added


def prepare_mailing(config: Config, engine: sa.Engine, edition_name: str, *, slot: str, now: datetime) -> int | None:
    """Create the edition's mailing for `slot` when there is news; return its id, or None.

    Idempotent per (edition, slot): a second call returns the first call's mailing. A slot
    that had no news stays open: a later call for it (news collected meanwhile) may create
    it. Everything (selection, mailing row, rendered content, the deliveries) is written in
    one transaction under the edition's lease, so a crash leaves either no mailing or a
    complete one, and two callers never carry the same brief twice.
    """
    edition = config.edition(edition_name)
    fields = {"edition": edition.name, "slot": slot}
    with _edition_lease(engine, edition.name) as held:
        with engine.begin() as conn:
            held.renew(conn)
            mailing_id = _existing(conn, edition.name, slot)
            if mailing_id is not None:
                log.info("slot already handled", extra={**fields, "mailing_id": mailing_id})
                return mailing_id
            after = window_start(conn, edition, now)
            selection = select(conn, edition, after=after, until=now)
            if len(selection.briefs) < edition.min_items:
                record_slot(conn, edition.name, slot, now, "no-news")
                log.info("no news", extra={**fields, "briefs": len(selection.briefs), "after": after.isoformat(),
                                           "min_items": edition.min_items})
                return None
            mailing_id, deliveries = _create(conn, config, edition, slot, now, selection)
            record_slot(conn, edition.name, slot, now, "mailing", mailing_id)
    log.info("mailing created", extra={**fields, "mailing_id": mailing_id, "briefs": len(selection.briefs),
                                       "deliveries": deliveries, "waiting": selection.waiting})
    return mailing_id


def draft(conn: sa.Connection, config: Config, edition: EditionConfig, now: datetime) -> MailingContent | None:
    """The mailing `prepare_mailing` would create now, rendered but stored nowhere; None when
    there is no news. It has no id: borrowing the next mailing's would give test copies that
    mailing's Message-IDs and archive link (which shows nothing yet, or later another copy)."""
    selection = select(conn, edition, after=window_start(conn, edition, now), until=now)
    if len(selection.briefs) < edition.min_items:
        return None
    rendered = render_mailing(config, edition, selection.briefs, mailing_id=None, created_at=now)
    return MailingContent(
        id=None, edition=edition.name, language=edition.language, subject=rendered.subject,
        preheader=rendered.preheader, html=rendered.html, text=rendered.text, content_hash=rendered.content_hash,
        created_at=now, brief_ids=tuple(b.id for b in selection.briefs if b.id is not None),
    )


def next_selection(conn: sa.Connection, edition: EditionConfig, now: datetime) -> Selection:
    """What the edition's next mailing would carry now, and how many briefs would still wait."""
    return select(conn, edition, after=window_start(conn, edition, now), until=now)


def waiting(conn: sa.Connection, edition: EditionConfig, now: datetime | None = None) -> int:
    """How many new briefs the edition's next mailing would carry now (for status)."""
    now = now or utcnow()
    selection = select(conn, edition, after=window_start(conn, edition, now), until=now)
    return len(selection.briefs) + selection.waiting
