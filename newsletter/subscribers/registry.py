"""The list itself: adding, confirming, changing and removing subscribers, with their consent.

Every change a person makes (subscribe, confirm, preferences, unsubscribe) leaves a consent
record with its time, IP, user agent and the version of the wording they saw, so the
publisher can show when and how each address agreed. Functions take an open transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsletter.errors import SubscriberError
from newsletter.store import schema, utcnow
from newsletter.subscribers.address import erased_key, normalise, subscribable
from newsletter.subscribers.profile import Profile
from newsletter.subscribers.suppression import record_event, suppress, suppression_reason

S = schema.subscribers
C = schema.consents


@dataclass(frozen=True)
class Consent:
    """Where a consent action came from."""

    ip: str | None = None
    user_agent: str | None = None
    form_version: str | None = None


def find(conn: sa.Connection, email: str) -> sa.Row | None:
    return conn.execute(sa.select(S).where(S.c.email == email)).one_or_none()


def search(conn: sa.Connection, fragment: str, limit: int = 50) -> list[sa.Row]:
    """Subscribers whose address contains `fragment` (case-insensitive), in address order."""
    pattern = "%" + fragment.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return conn.execute(sa.select(S).where(sa.func.lower(S.c.email).like(pattern, escape="\\"))
                        .order_by(S.c.email).limit(limit)).all()


def get(conn: sa.Connection, subscriber_id: int) -> sa.Row | None:
    return conn.execute(sa.select(S).where(S.c.id == subscriber_id)).one_or_none()


def _profile_values(profile: Profile) -> dict[str, Any]:
    return {"name": profile.name, "language": profile.language, "editions": list(profile.editions),
            "countries": list(profile.countries)}


def add_consent(conn: sa.Connection, subscriber_id: int, action: str, consent: Consent, *,
                at: datetime | None = None, confirmed_at: datetime | None = None,
                detail: dict[str, Any] | None = None) -> None:
    conn.execute(sa.insert(C).values(
        subscriber_id=subscriber_id, action=action, at=at or utcnow(), ip=consent.ip,
        user_agent=(consent.user_agent or None) and consent.user_agent[:512],
        form_version=consent.form_version, confirmed_at=confirmed_at, detail=detail,
    ))


def update_preferences(conn: sa.Connection, subscriber_id: int, profile: Profile, consent: Consent) -> None:
    conn.execute(sa.update(S).where(S.c.id == subscriber_id).values(updated_at=utcnow(), **_profile_values(profile)))
    add_consent(conn, subscriber_id, "preferences", consent, detail={"profile": _profile_values(profile)})


def unsubscribe(conn: sa.Connection, subscriber_id: int, consent: Consent, *, how: str) -> None:
    """Stop mailing at once; `how` says which way they left (page, one-click, ...)."""
    row = get(conn, subscriber_id)
    if row is None:
        return
    suppress(conn, row.email, "unsubscribed", how)
    add_consent(conn, subscriber_id, "unsubscribe", consent, detail={"how": how})
    record_event(conn, "unsubscribe", row.email, None, {"how": how})


def add(conn: sa.Connection, email: str, profile: Profile, consent: Consent, *, source: str) -> tuple[int, bool]:
    """An operator adds (or updates) an active subscriber; (id, created).

    Refused for an address that left, bounced, complained or was erased: only the person can
    come back, through the subscribe form.
    """
    email = subscribable(email)
    reason = suppression_reason(conn, email)
    if reason is not None:
        raise SubscriberError(f"{email} is suppressed ({reason}); it is never re-activated by an operator")
    row = find(conn, email)
    now = utcnow()
    if row is not None and row.status not in ("pending", "active"):
        raise SubscriberError(f"{email} is {row.status}; it is never re-activated by an operator")
    if row is None:
        subscriber_id = conn.execute(sa.insert(S).values(
            email=email, status="active", soft_bounces=0, created_at=now, updated_at=now, confirmed_at=now,
            **_profile_values(profile),
        ).returning(S.c.id)).scalar_one()
    else:
        subscriber_id = row.id
        conn.execute(sa.update(S).where(S.c.id == row.id).values(
            status="active", updated_at=now, confirmed_at=row.confirmed_at or now, **_profile_values(profile)))
    add_consent(conn, subscriber_id, "add", consent, at=now, confirmed_at=now, detail={"source": source})
    return subscriber_id, row is None


def remove(conn: sa.Connection, email: str) -> None:
    """An operator takes an address off the list for good (suppressed, reason `manual`)."""
    email = normalise(email)
    row = find(conn, email)
    if row is None and suppression_reason(conn, email) is None:
        raise SubscriberError(f"{email} is not on the list")
    suppress(conn, email, "manual", "removed by an operator")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def data(conn: sa.Connection, subscriber_id: int) -> dict[str, Any]:
    """Everything the store holds about one subscriber, as plain JSON-ready data."""
    row = get(conn, subscriber_id)
    if row is None:
        raise SubscriberError(f"no subscriber with id {subscriber_id}")
    consents = conn.execute(sa.select(C).where(C.c.subscriber_id == subscriber_id).order_by(C.c.id)).all()
    events = conn.execute(sa.select(schema.events).where(schema.events.c.email == row.email)
                          .order_by(schema.events.c.id)).all()
    deliveries = conn.execute(sa.select(schema.deliveries.c.mailing_id, schema.deliveries.c.state,
                                        schema.deliveries.c.sent_at)
                              .where(schema.deliveries.c.subscriber_id == subscriber_id)
                              .order_by(schema.deliveries.c.id)).all()
    return {
        "email": row.email, "name": row.name, "language": row.language, "editions": list(row.editions),
        "countries": list(row.countries), "status": row.status, "soft_bounces": row.soft_bounces,
        "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at),
        "confirmed_at": _iso(row.confirmed_at), "unsubscribed_at": _iso(row.unsubscribed_at),
        "suppressed": suppression_reason(conn, row.email),
        "consents": [
            {"action": c.action, "at": _iso(c.at), "ip": c.ip, "user_agent": c.user_agent,
             "form_version": c.form_version, "confirmed_at": _iso(c.confirmed_at), "detail": c.detail}
            for c in consents
        ],
        "events": [{"at": _iso(e.at), "kind": e.kind, "provider": e.provider, "detail": e.detail} for e in events],
        "deliveries": [{"mailing_id": d.mailing_id, "state": d.state, "sent_at": _iso(d.sent_at)}
                       for d in deliveries],
    }


def erase(conn: sa.Connection, subscriber_id: int) -> None:
    """Forget a subscriber: only a hash of the address stays, carrying the suppression they chose
    (unsubscribed, a complaint, a bounce) or `erased`. Erasure is not a ban: the person may
    subscribe again with a new double opt-in, which lifts `erased` as it lifts `unsubscribed`.

    The delivery ledger and events keep their counts but lose the address.
    """
    row = get(conn, subscriber_id)
    if row is None:
        return
    key = erased_key(row.email)
    reason = suppression_reason(conn, row.email) or "erased"
    d = schema.deliveries
    # The ledger has no foreign key to clear the id (store migration 0008): one pass does both.
    conn.execute(sa.update(d).where(sa.or_(d.c.email == row.email, d.c.subscriber_id == subscriber_id))
                 .values(email=sa.case((d.c.email == row.email, key), else_=d.c.email), subscriber_id=None))
    conn.execute(sa.update(schema.events).where(schema.events.c.email == row.email).values(email=key, detail=None))
    conn.execute(sa.delete(schema.subscribe_requests).where(schema.subscribe_requests.c.email == row.email))
    conn.execute(sa.delete(C).where(C.c.subscriber_id == subscriber_id))
    conn.execute(sa.delete(S).where(S.c.id == subscriber_id))
    conn.execute(sa.delete(schema.suppressions).where(schema.suppressions.c.email.in_([row.email, key])))
    suppress(conn, key, reason, None)
