"""The delivery ledger: one row per mailing and subscriber, the record that makes sends resumable.

A delivery moves pending -> sending (claimed by one worker) -> sent | failed, or back to pending
with a later `next_attempt_at` when a retry may help; `suppressed` when the address must not be
mailed (states: `newsletter.states`). A claim is atomic (PostgreSQL: FOR UPDATE SKIP LOCKED, so
workers on several machines share a mailing; SQLite: every transaction already holds the write
lock), and results are written right after the transport answered, so a crash leaves at most the
claimed batch in doubt.

A claim lives on a heartbeat: while its worker runs, `renew` moves `claimed_at` forward every
quarter of the lease, so a claim is only ever older than the lease when its worker stopped
beating, however long a batch takes to hand over. Whether a worker is alive is read from the
store alone, never from process ids or host names, which containers reuse: a dead worker's
claims are taken back by any sender, on any host, within one lease. `record` and `release`
touch only claims the worker still holds, so a worker that lost its claim cannot overwrite
what the sender that took it over recorded.
"""

from __future__ import annotations

import functools
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Callable, Iterable, Iterator, Sequence

import sqlalchemy as sa

from newsletter.digest.message import MailingContent
from newsletter.errors import RenderError, StoreError
from newsletter.recipients import Recipient
from newsletter.send.claims import Claimed, Outcome
from newsletter.states import UNFINISHED, DeliveryState, MailingStatus
from newsletter.store import schema, utcnow
from newsletter.store.db import dialect_insert
from newsletter.subscribers.suppression import suppressed_among

d = schema.deliveries
m = schema.mailings
INSERT_CHUNK = 1000
# PostgreSQL's work_mem while a mailing's deliveries are written: a million rows sort in memory.
SORT_MEMORY = "128MB"
# Beats per lease: a few missed beats (a busy store) never let a live worker's claim expire.
BEATS_PER_LEASE = 4

log = logging.getLogger(__name__)


def _chunks(items: Iterable[Recipient], size: int) -> Iterator[list[Recipient]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _insert(conn: sa.Connection) -> Callable[[], object]:
    return lambda: dialect_insert(conn, d).on_conflict_do_nothing(index_elements=["mailing_id", "subscriber_id"])


def count(conn: sa.Connection, mailing_id: int) -> dict[str, int]:
    rows = conn.execute(
        sa.select(d.c.state, sa.func.count()).where(d.c.mailing_id == mailing_id).group_by(d.c.state)
    )
    counts = dict.fromkeys(DeliveryState, 0)
    counts.update({state: n for state, n in rows})
    return counts


def create_deliveries(conn: sa.Connection, mailing_id: int, recipients: Iterable[Recipient]) -> int:
    """Record one delivery per recipient, once: running it again adds only the missing ones.

    Recipients are subscribers: a delivery is keyed by its subscriber (migration 0010), so a
    one-off address (no subscriber id) is refused. Addresses on the suppression list are recorded as `suppressed`, so the ledger says why
    they were not mailed. Streams the recipients in chunks, whatever the size of the list.
    Returns how many deliveries were added. A mailing's readers go through `record_planned`,
    which the store runs by itself; this is for lists made in Python.
    """
    before = conn.scalar(sa.select(sa.func.count()).select_from(d).where(d.c.mailing_id == mailing_id))
    insert = _insert(conn)
    for chunk in _chunks(recipients, INSERT_CHUNK):
        if any(r.id is None for r in chunk):
            raise ValueError(f"a delivery is for a subscriber: {next(r.email for r in chunk if r.id is None)} "
                             "has no subscriber id (add them as a subscriber first)")
        blocked = suppressed_among(conn, [r.email for r in chunk])
        rows = [
            {"mailing_id": mailing_id, "subscriber_id": r.id, "email": r.email, "attempts": 0, "content_key": None,
             "last_error": None,
             "state": DeliveryState.SUPPRESSED if r.email in blocked else DeliveryState.PENDING}
            for r in chunk
        ]
        conn.execute(insert(), rows)
    after = conn.scalar(sa.select(sa.func.count()).select_from(d).where(d.c.mailing_id == mailing_id))
    return after - before


def record_planned(conn: sa.Connection, mailing_id: int, rows: sa.Select) -> int:
    """Record one delivery per row of `rows` (subscriber_id, email, state, content_key,
    last_error: `audience.planned_rows`), once, in one INSERT ... SELECT: the store reads the
    subscribers and writes the deliveries itself, so a million readers cost no Python memory.
    Returns how many deliveries were added.

    The audience already leaves out suppressed addresses; an erased one (only its hash is in
    the suppression list) is caught by `claim`, which checks every batch before it is sent.
    """
    picked = rows.subquery()
    source = sa.select(sa.literal(mailing_id, sa.Integer), picked.c.subscriber_id, picked.c.email, picked.c.state,
                       sa.literal(0, sa.Integer), picked.c.last_error, picked.c.content_key)
    columns = ["mailing_id", "subscriber_id", "email", "state", "attempts", "last_error", "content_key"]
    if conn.dialect.name == "postgresql":
        # Sort the million rows into subscriber order in memory rather than in temporary files
        # (this transaction only).
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{SORT_MEMORY}'")
    recorded = conn.execute(sa.select(d.c.id).where(d.c.mailing_id == mailing_id).limit(1)).first()
    if recorded is None:
        # A mailing with no deliveries yet, and one row per subscriber (their addresses are
        # unique): nothing can conflict, and PostgreSQL's ON CONFLICT would cost a speculative
        # insertion per row, as long again as the insert itself.
        return conn.execute(d.insert().from_select(columns, source)).rowcount
    # WHERE true: SQLite would read the ON of ON CONFLICT as a join's without one.
    return conn.execute(_insert(conn)().from_select(columns, source.where(sa.true()))).rowcount


@functools.lru_cache(maxsize=None)
def _claim_statement(dialect: str, stale: bool) -> sa.Update:
    """One claim as one statement, built once per kind (SQLAlchemy then reuses its compiled SQL):
    pick up to `limit` ids, mark them claimed, and return them with who they go to. The
    mailing's status is part of the pick, so a paused mailing hands out nothing."""
    s = schema.subscribers
    if stale:
        due = sa.and_(d.c.state == DeliveryState.SENDING, d.c.claimed_at < sa.bindparam("b_stale_before"))
    else:
        due = sa.and_(d.c.state == DeliveryState.PENDING,
                      sa.or_(d.c.next_attempt_at.is_(None), d.c.next_attempt_at <= sa.bindparam("b_now")))
    sending = sa.exists().where(m.c.id == sa.bindparam("b_mailing_id"), m.c.status == MailingStatus.SENDING)
    pick = (sa.select(d.c.id).where(d.c.mailing_id == sa.bindparam("b_mailing_id"), due, sending)
            .order_by(d.c.id).limit(sa.bindparam("b_limit")))
    if dialect == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    of_subscriber = s.c.id == d.c.subscriber_id
    return (
        sa.update(d).where(d.c.id.in_(pick.scalar_subquery()))
        .values(state=DeliveryState.SENDING, claimed_by=sa.bindparam("b_worker"), claimed_at=sa.bindparam("b_now"))
        .returning(d.c.id, d.c.email, d.c.attempts, d.c.subscriber_id, d.c.content_key,
                   sa.select(s.c.name).where(of_subscriber).scalar_subquery().label("name"),
                   sa.select(s.c.language).where(of_subscriber).scalar_subquery().label("language"))
    )


def claim(conn: sa.Connection, mailing_id: int, worker: str, limit: int, now: datetime,
          lease: timedelta) -> list[Claimed]:
    """Take up to `limit` due deliveries for `worker`, or none when the mailing is not sending.

    Due: pending with no retry time or one that has come, or claimed by a worker whose lease ran
    out (it crashed or lost the store). Deliveries whose address was suppressed since the
    mailing was created are marked suppressed here rather than sent.
    """
    # Two narrow picks rather than one OR, so each walks the (mailing_id, state, id) index and
    # stops after `limit` rows instead of scanning the mailing's deliveries on every claim;
    # the stale one only runs when the due ones do not fill the batch.
    rows: list[sa.Row] = []
    params = {"b_mailing_id": mailing_id, "b_worker": worker, "b_now": now, "b_stale_before": now - lease}
    for stale in (False, True):
        rows += conn.execute(_claim_statement(conn.dialect.name, stale), {**params, "b_limit": limit - len(rows)}).all()
        if len(rows) >= limit:
            break
    if not rows:
        return []
    rows.sort(key=lambda r: r.id)
    blocked = set(suppressed_among(conn, [r.email for r in rows]))
    if blocked:
        conn.execute(sa.update(d).where(d.c.id.in_([r.id for r in rows]), d.c.email.in_(blocked))
                     .values(state=DeliveryState.SUPPRESSED, claimed_by=None, claimed_at=None))
    return [
        Claimed(r.id, r.attempts, Recipient(r.subscriber_id, r.email, r.name or "", r.language or ""), r.content_key)
        for r in rows if r.email not in blocked
    ]


def _with_recipients(conn: sa.Connection, where: sa.ColumnElement[bool],
                     limit: int | None = None) -> tuple[list[Claimed], set[str], int]:
    """The deliveries `where` picks, in id order, with who they go to, less the addresses now
    suppressed (returned apart), and the last id read (0: none): what a claim hands a worker,
    and what a dry run renders."""
    s = schema.subscribers
    rows = conn.execute(
        sa.select(d.c.id, d.c.email, d.c.attempts, d.c.subscriber_id, d.c.content_key, s.c.name, s.c.language)
        .select_from(d.outerjoin(s, s.c.id == d.c.subscriber_id))
        .where(where).order_by(d.c.id).limit(limit)
    ).all()
    blocked = set(suppressed_among(conn, [r.email for r in rows]))
    claimed = [
        Claimed(r.id, r.attempts, Recipient(r.subscriber_id, r.email, r.name or "", r.language or ""), r.content_key)
        for r in rows if r.email not in blocked
    ]
    return claimed, blocked, rows[-1].id if rows else 0


@dataclass(frozen=True)
class Page:
    """A page of a mailing's unfinished deliveries, read without claiming them."""

    deliveries: list[Claimed]  # the ones a claim would hand out (address not suppressed)
    suppressed: int  # the ones a claim would mark suppressed
    last_id: int  # where the next page starts; 0 when this page is empty


def unfinished_page(conn: sa.Connection, mailing_id: int, after_id: int, limit: int) -> Page:
    """The next `limit` unfinished deliveries after `after_id`, as `claim` would see them; changes nothing."""
    where = sa.and_(d.c.mailing_id == mailing_id, d.c.state.in_(UNFINISHED), d.c.id > after_id)
    claimed, blocked, last_id = _with_recipients(conn, where, limit)
    return Page(claimed, len(blocked), last_id)


@functools.lru_cache(maxsize=None)
def _record_statement(state: DeliveryState, together: bool) -> sa.Update:
    """What recording one kind of outcome writes, built once (SQLAlchemy then reuses its compiled
    SQL): for one delivery a row (`b_id`), or `together` for all those of a list (`b_ids`)."""
    common = {"claimed_by": None, "claimed_at": None, "attempts": d.c.attempts + 1}
    values = {
        DeliveryState.SENT: {**common, "state": DeliveryState.SENT, "sent_at": sa.bindparam("b_now"),
                             "last_error": None, "provider_message_id": sa.bindparam("b_pmid")},
        DeliveryState.FAILED: {**common, "state": DeliveryState.FAILED, "last_error": sa.bindparam("b_error")},
        DeliveryState.PENDING: {**common, "state": DeliveryState.PENDING, "last_error": sa.bindparam("b_error"),
                                "next_attempt_at": sa.bindparam("b_next")},
        DeliveryState.SUPPRESSED: {"claimed_by": None, "claimed_at": None, "state": DeliveryState.SUPPRESSED},
    }
    which = d.c.id.in_(sa.bindparam("b_ids", expanding=True)) if together else d.c.id == sa.bindparam("b_id")
    return (sa.update(d).where(which, d.c.state == DeliveryState.SENDING, d.c.claimed_by == sa.bindparam("b_worker"))
            .values(**values[state]))


def record(conn: sa.Connection, worker: str, outcomes: Sequence[Outcome], now: datetime) -> int:
    """Write what the transport said; returns how many rows it wrote. Outcomes that write the
    same values (a batch's sent copies, most often the whole batch) go in one statement; the
    others, one statement per kind of outcome with a row each.

    Only the deliveries `worker` still holds are written: one whose claim expired and was taken
    over belongs to its new claimer, and was in doubt from the moment the claim was lost.
    """
    alike: dict[tuple[DeliveryState, str | None, datetime | None, str | None], list[int]] = {}
    for o in outcomes:
        alike.setdefault((o.state, o.error, o.next_attempt_at, o.provider_message_id), []).append(o.delivery_id)
    by_state: dict[DeliveryState, list[dict[str, object]]] = {}
    written = 0
    for (state, error, next_at, pmid), ids in alike.items():
        params = {"b_error": error, "b_next": next_at, "b_pmid": pmid, "b_worker": worker, "b_now": now}
        if len(ids) > 1:
            written += conn.execute(_record_statement(state, True), {**params, "b_ids": ids}).rowcount
        else:
            by_state.setdefault(state, []).append({**params, "b_id": ids[0]})
    for state, rows in by_state.items():
        written += conn.execute(_record_statement(state, False), rows).rowcount
    if written < len(outcomes):
        log.warning("claims lost before their outcome was recorded",
                    extra={"worker": worker, "outcomes": len(outcomes), "recorded": written})
    return written


def renew(conn: sa.Connection, mailing_id: int, workers: Sequence[str], now: datetime) -> int:
    """The heartbeat: the claims `workers` hold on the mailing are fresh as of `now`. Returns how many."""
    return conn.execute(
        sa.update(d).where(d.c.mailing_id == mailing_id, d.c.state == DeliveryState.SENDING,
                           d.c.claimed_by.in_(list(workers))).values(claimed_at=now)
    ).rowcount


def _beat(engine: sa.Engine, mailing_id: int, workers: Callable[[], Sequence[str]], lease: timedelta,
          stop: threading.Event) -> None:
    while not stop.wait(lease.total_seconds() / BEATS_PER_LEASE):
        names = workers()
        if not names:
            continue
        try:
            with engine.begin() as conn:
                renew(conn, mailing_id, names, utcnow())
        except sa.exc.DBAPIError as exc:
            # A busy or unreachable store: the next beat tries again, well before the lease runs out.
            log.warning("claim heartbeat failed", extra={"mailing_id": mailing_id, "detail": str(exc.orig)})


@contextmanager
def heartbeat(engine: sa.Engine, mailing_id: int, workers: Callable[[], Sequence[str]],
              lease: timedelta) -> Iterator[None]:
    """Keep the claims of the claimers `workers()` names at each beat alive while the block runs
    (a thread beating `BEATS_PER_LEASE` times a lease): a claimer left out stops being renewed
    and its claims expire; when the process dies, the beat stops with it and all of them expire."""
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(engine, mailing_id, workers, lease, stop),
                            name=f"claims of mailing {mailing_id}", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()


def next_retry(conn: sa.Connection, mailing_id: int) -> datetime | None:
    """When the earliest delivery waiting for a retry is due."""
    return conn.scalar(
        sa.select(sa.func.min(d.c.next_attempt_at, type_=schema.UTCDateTime()))
        .where(d.c.mailing_id == mailing_id, d.c.state == DeliveryState.PENDING)
    )


def release(conn: sa.Connection, worker: str, delivery_ids: Sequence[int]) -> None:
    """Give claimed deliveries back untouched: never handed over (the transport is unusable, or
    the sender is stopping), so the next claim sends them as if they had never been claimed."""
    conn.execute(sa.update(d).where(d.c.id.in_(list(delivery_ids)), d.c.state == DeliveryState.SENDING,
                                    d.c.claimed_by == worker)
                 .values(state=DeliveryState.PENDING, claimed_by=None, claimed_at=None))


def mailing(conn: sa.Connection, mailing_id: int) -> sa.Row:
    """The mailing's row; StoreError when there is none."""
    row = conn.execute(sa.select(m).where(m.c.id == mailing_id)).one_or_none()
    if row is None:
        raise StoreError(f"no mailing with id {mailing_id} in the store")
    return row


def stored_copy(conn: sa.Connection, mailing: MailingContent, key: str | None) -> MailingContent:
    """The copy `key` of a mailing as it was frozen when the mailing was created (the mailing
    itself for None), ready for a MessageFactory."""
    if key is None:
        return mailing
    mc = schema.mailing_contents
    row = conn.execute(sa.select(mc).where(mc.c.mailing_id == mailing.id, mc.c.key == key)).first()
    if row is None:
        raise RenderError(f"mailing {mailing.id} has no copy {key!r} in mailing_contents")
    return MailingContent(
        id=mailing.id, edition=mailing.edition, language=mailing.language, subject=row.subject,
        preheader=row.preheader, html=row.html, text=row.text, content_hash=row.content_hash,
        created_at=mailing.created_at, brief_ids=tuple(row.brief_ids),
    )


def status(conn: sa.Connection, mailing_id: int) -> str | None:
    return conn.scalar(sa.select(m.c.status).where(m.c.id == mailing_id))


def start(conn: sa.Connection, mailing_id: int, now: datetime) -> None:
    """Note when the mailing's first send began (kept by later ones)."""
    conn.execute(sa.update(m).where(m.c.id == mailing_id, m.c.started_at.is_(None)).values(started_at=now))


def unfinished(conn: sa.Connection, mailing_id: int) -> int:
    return conn.scalar(
        sa.select(sa.func.count()).select_from(d)
        .where(d.c.mailing_id == mailing_id, d.c.state.in_(UNFINISHED))
    ) or 0


def pause(conn: sa.Connection, mailing_id: int, reason: str) -> bool:
    result = conn.execute(
        sa.update(m).where(m.c.id == mailing_id, m.c.status == MailingStatus.SENDING)
        .values(status=MailingStatus.PAUSED, paused_reason=reason)
    )
    return result.rowcount == 1


def resume(conn: sa.Connection, mailing_id: int) -> bool:
    """Let a paused mailing send again (the operator fixed what paused it)."""
    result = conn.execute(
        sa.update(m).where(m.c.id == mailing_id, m.c.status == MailingStatus.PAUSED)
        .values(status=MailingStatus.SENDING, paused_reason=None)
    )
    return result.rowcount == 1


def finish_if_done(conn: sa.Connection, mailing_id: int, now: datetime) -> bool:
    if unfinished(conn, mailing_id):
        return False
    result = conn.execute(
        sa.update(m).where(m.c.id == mailing_id, m.c.status == MailingStatus.SENDING)
        .values(status=MailingStatus.DONE, finished_at=now)
    )
    return result.rowcount == 1
