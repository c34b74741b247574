"""Apply a bounce report to the store, once, exactly as the webhooks apply a provider's event.

A report changes something only when it can be tied to one of our deliveries: by the VERP token
in the address it was sent to (unforgeable: it is signed), or by the Message-ID of our copy that
it quotes, which is a keyed hash of the mailing and the subscriber. Anyone can mail the bounce
address, so a report naming an address and nothing we signed suppresses no one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from newsletter.bounces import verp
from newsletter.bounces.parse import Failure, Kind, Report
from newsletter.digest.message import message_id_digest
from newsletter.store import schema, utcnow
from newsletter.subscribers.address import loose
from newsletter.subscribers.suppression import BounceKind, record_bounce

PROVIDER = "mailbox"
_BOUNCE_KINDS: dict[Kind, BounceKind] = {Kind.HARD: "hard", Kind.SOFT: "soft", Kind.COMPLAINT: "complaint"}


@dataclass(frozen=True)
class Target:
    """One address a report is about, with the delivery it was tied to."""

    email: str
    failure: Failure
    mailing_id: int | None
    delivery_id: int | None


@dataclass
class Applied:
    recorded: int = 0
    duplicates: int = 0
    unmatched: int = 0
    suppressed: int = 0


def targets(conn: sa.Connection, key: bytes, return_path: str, report: Report) -> list[Target]:
    """The deliveries `report` is provably about (see the module's docstring)."""
    d = schema.deliveries
    for candidate in (*report.delivered_to, report.original_sender):
        delivery_id = verp.delivery_id(key, return_path, candidate) if candidate else None
        if delivery_id is None:
            continue
        row = conn.execute(sa.select(d.c.id, d.c.email, d.c.mailing_id).where(d.c.id == delivery_id)).first()
        if row is None:
            return []
        failure = _failure_for(report, row.email)
        return [Target(row.email, failure, row.mailing_id, row.id)]
    found = []
    for failure in report.failures:
        target = _by_message_id(conn, key, report.original_message_id, failure)
        if target is not None:
            found.append(target)
    return found


def _failure_for(report: Report, email: str) -> Failure:
    """The report's line about `email`; else its worst (a VERP bounce may quote another spelling)."""
    for failure in report.failures:
        if loose(failure.email) == loose(email):
            return failure
    if report.failures:
        return max(report.failures, key=lambda f: f.kind is Kind.HARD)
    return Failure(email, report.kind)


def _by_message_id(conn: sa.Connection, key: bytes, message_id: str, failure: Failure) -> Target | None:
    local, _, _ = message_id.strip("<>").partition("@")
    mailing_text, _, digest = local.partition(".")
    if not mailing_text.isdigit() or not digest:
        return None
    email = loose(failure.email)
    s, d = schema.subscribers, schema.deliveries
    subscriber_id = conn.execute(sa.select(s.c.id).where(s.c.email == email)).scalar_one_or_none()
    if subscriber_id is None:
        return None
    mailing_id = int(mailing_text)
    if len(digest) < 16 or message_id_digest(key, mailing_id, str(subscriber_id))[: len(digest)] != digest:
        return None
    delivery_id = conn.execute(
        sa.select(d.c.id).where(d.c.mailing_id == mailing_id, d.c.subscriber_id == subscriber_id)
    ).scalar_one_or_none()
    return Target(email, failure, mailing_id, delivery_id)


def _first_time(conn: sa.Connection, report: Report, email: str, source: str, target: Target | None) -> bool:
    """Claim (message, address): False when it was applied before, or is being applied right now
    by another fetch (the unique key makes that one wait for this transaction, then find it)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    failure = target.failure if target else None
    values: dict[str, Any] = dict(
        identity=report.identity, email=email, received_at=utcnow(), source=source, kind=str(report.kind),
        mailing_id=target.mailing_id if target else None, delivery_id=target.delivery_id if target else None,
        status=failure.status if failure else "", detail=(failure.diagnostic or None) if failure else None,
    )
    if failure is not None:
        values["kind"] = str(failure.kind)
    inserted = conn.execute(dialect.insert(schema.bounce_reports).values(**values).on_conflict_do_nothing()
                            .returning(schema.bounce_reports.c.id)).first()
    return inserted is not None


def apply(conn: sa.Connection, key: bytes, return_path: str, report: Report, *, source: str,
          soft_limit: int) -> Applied:
    """Record the report and act on it: hard bounces and complaints suppress, soft bounces count
    toward `soft_limit`. Call inside one transaction, so the record and its effect commit together."""
    applied = Applied()
    if report.kind is Kind.UNKNOWN:
        return applied
    if report.kind is Kind.AUTO_REPLY:
        if _first_time(conn, report, "", source, None):
            applied.recorded += 1
        else:
            applied.duplicates += 1
        return applied
    found = targets(conn, key, return_path, report)
    if not found:
        applied.unmatched = max(len(report.failures), 1)
        return applied
    s = schema.subscribers
    for target in found:
        if not _first_time(conn, report, target.email, source, target):
            applied.duplicates += 1
            continue
        applied.recorded += 1
        if conn.execute(sa.select(s.c.id).where(s.c.email == loose(target.email))).first() is None:
            continue  # an address that is no longer (or never was) a subscriber: nothing to change
        detail = {"source": source, "status": target.failure.status, "diagnostic": target.failure.diagnostic,
                  "mailing_id": target.mailing_id, "delivery_id": target.delivery_id}
        applied.suppressed += record_bounce(conn, target.email, _BOUNCE_KINDS[target.failure.kind], PROVIDER,
                                            detail, soft_limit)
    return applied
