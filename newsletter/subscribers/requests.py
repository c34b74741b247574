"""Subscription requests from the public form: each one kept on its own, bound to its own link.

Every POST of the form becomes one request row, whatever the address's state, so the answer
does the same work for a new address as for a subscribed one. The confirmation mailer
(`newsletter.web.confirmation`) then decides, away from the request, whether to mail a link.
A confirmation link names one request and applies exactly that request's choices; a later
request for the same address neither changes nor consumes it. Requests expire after
`[web].confirm_hours` and are purged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from newsletter.store import schema, utcnow
from newsletter.subscribers import limits
from newsletter.subscribers.profile import Profile
from newsletter.subscribers.registry import Consent, add_consent, find, get
from newsletter.subscribers.suppression import lift_unsubscribe, suppression_reason

Q = schema.subscribe_requests
S = schema.subscribers

# Request states.
QUEUED = "queued"  # waiting for the mailer
CLAIMED = "claimed"  # a mailer is on it
MAILED = "mailed"  # a confirmation link went out
SKIPPED = "skipped"  # already active, or suppressed for good: nothing is mailed
LIMITED = "limited"  # the address had its confirmation emails for the day
CONFIRMED = "confirmed"
# Suppressions a person lifts by confirming a new subscription themselves.
LIFTABLE = ("unsubscribed", "manual", "erased")


def record(conn: sa.Connection, email: str, profile: Profile, consent: Consent, *, page_language: str,
           hours: int, now: datetime | None = None) -> int:
    """Store one request as it came; the same single insert whatever the address's state."""
    now = now or utcnow()
    return conn.execute(sa.insert(Q).values(
        email=email, name=profile.name, language=profile.language, editions=list(profile.editions),
        countries=list(profile.countries), ip=consent.ip, user_agent=consent.user_agent,
        form_version=consent.form_version, page_language=page_language, requested_at=now,
        expires_at=now + timedelta(hours=hours), state=QUEUED,
    ).returning(Q.c.id)).scalar_one()


def claim(conn: sa.Connection, limit: int = 50) -> list[sa.Row]:
    """Take queued requests for this mailer; a request is claimed by one mailer only."""
    taken = []
    for row in conn.execute(sa.select(Q).where(Q.c.state == QUEUED).order_by(Q.c.id).limit(limit)).all():
        if conn.execute(sa.update(Q).where(Q.c.id == row.id, Q.c.state == QUEUED)
                        .values(state=CLAIMED)).rowcount == 1:
            taken.append(row)
    return taken


def wanted(conn: sa.Connection, email: str) -> bool:
    """Whether a confirmation may be mailed to `email`: not active already, not suppressed for good."""
    reason = suppression_reason(conn, email)
    if reason is not None and reason not in LIFTABLE:
        return False
    row = find(conn, email)
    return row is None or row.status not in ("active", "bounced", "complained")


def decide(conn: sa.Connection, request: sa.Row, address_key: str, per_address: int, now: datetime) -> str:
    """The request's outcome: MAILED (the caller sends the link), SKIPPED or LIMITED."""
    if not wanted(conn, request.email):
        state = SKIPPED
    elif limits.count(conn, limits.CONFIRM_ADDRESS, address_key, now) >= per_address:
        state = LIMITED
    else:
        limits.record(conn, limits.CONFIRM_ADDRESS, address_key, now)
        state = MAILED
    conn.execute(sa.update(Q).where(Q.c.id == request.id).values(state=state, processed_at=now))
    return state


@dataclass(frozen=True)
class Confirmed:
    subscriber_id: int
    language: str


def confirm(conn: sa.Connection, request_id: int, consent: Consent) -> Confirmed | None:
    """Apply exactly this request's choices; None when it is not mailed, expired or already used,
    or when the address left after it was asked for, or is suppressed for good."""
    now = utcnow()
    request = conn.execute(sa.select(Q).where(Q.c.id == request_id)).one_or_none()
    if request is None or request.state != MAILED or request.expires_at <= now:
        return None
    row = find(conn, request.email)
    if row is not None and row.unsubscribed_at is not None and row.unsubscribed_at > request.requested_at:
        return None  # an old link never undoes a later unsubscribe
    reason = suppression_reason(conn, request.email)
    if reason is not None and reason not in LIFTABLE:
        return None
    if conn.execute(sa.update(Q).where(Q.c.id == request_id, Q.c.state == MAILED)
                    .values(state=CONFIRMED, confirmed_at=now)).rowcount != 1:
        return None
    profile = {"name": request.name, "language": request.language, "editions": list(request.editions),
               "countries": list(request.countries)}
    if row is None:
        subscriber_id = conn.execute(sa.insert(S).values(
            email=request.email, status="active", soft_bounces=0, created_at=now, updated_at=now,
            confirmed_at=now, **profile).returning(S.c.id)).scalar_one()
    else:
        subscriber_id = row.id
        conn.execute(sa.update(S).where(S.c.id == row.id).values(
            status="active", confirmed_at=now, updated_at=now, unsubscribed_at=None, soft_bounces=0, **profile))
    lift_unsubscribe(conn, request.email)
    asked = Consent(request.ip, request.user_agent, request.form_version)
    add_consent(conn, subscriber_id, "subscribe", asked, at=request.requested_at, confirmed_at=now,
                detail={"profile": profile, "request_id": request.id})
    add_consent(conn, subscriber_id, "confirm", consent, at=now, confirmed_at=now,
                detail={"request_id": request.id})
    confirmed = get(conn, subscriber_id)
    return Confirmed(subscriber_id, confirmed.language)


def purge(conn: sa.Connection, now: datetime | None = None) -> int:
    """Delete expired requests (a confirmed one lives on in the subscriber's consent records)."""
    return conn.execute(sa.delete(Q).where(Q.c.expires_at <= (now or utcnow()))).rowcount
