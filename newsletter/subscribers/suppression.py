"""The suppression list, which wins over everything, and the bounces that feed it."""

from __future__ import annotations

import functools
import json
from typing import Any, Iterator, Literal

import sqlalchemy as sa

from newsletter.store import schema, utcnow
from newsletter.store.db import dialect_insert
from newsletter.subscribers.address import erased_key, loose

S = schema.subscribers
X = schema.suppressions

# The status a subscriber takes when their address is suppressed for each reason.
_STATUS_FOR_REASON = {
    "hard_bounce": "bounced",
    "soft_bounce_limit": "bounced",
    "complaint": "complained",
    "unsubscribed": "unsubscribed",
    "manual": "unsubscribed",
}
BounceKind = Literal["hard", "soft", "complaint"]


def _insert_ignore(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    conn.execute(dialect_insert(conn, table).on_conflict_do_nothing(), rows)


def literal_in_list(values: list[str]) -> sa.BindParameter:
    """An IN list written into the SQL as constants, which PostgreSQL hashes. As parameters it
    compares every row with every value when a table has no statistics yet (a first import)."""
    return sa.bindparam("values", values, expanding=True, literal_execute=True)


def in_values(conn: sa.Connection, column: sa.ColumnElement[Any], values: list[str]) -> Iterator[sa.ColumnElement[bool]]:
    """Conditions `column IN values` for a long list, one statement each, as each store plans
    them best: PostgreSQL gets literal lists of 900; SQLite one JSON array for the lot (json_each),
    sparing the rendering and binding of thousands of values."""
    if conn.dialect.name == "postgresql":
        for start in range(0, len(values), 900):
            yield column.in_(literal_in_list(values[start:start + 900]))
    elif values:
        yield column.in_(sa.select(sa.func.json_each(json.dumps(values)).table_valued("value").c.value))


def suppression_reason(conn: sa.Connection, email: str) -> str | None:
    """Why `email` must not be mailed (its own entry, or its erased hash), or None."""
    return conn.execute(
        sa.select(X.c.reason).where(X.c.email.in_([email, erased_key(email)])).limit(1)
    ).scalar_one_or_none()


# Up to this many addresses (a send's claim, a page) are looked up by one statement built once,
# the list bound as one value; longer lists go through `in_values`.
SHORT_LIST = 900


@functools.lru_cache(maxsize=None)
def _among_short_list(dialect: str) -> sa.Select[tuple[str, str]]:
    """The suppression entries among a list bound as `b_values`: a JSON array on SQLite, an
    array on PostgreSQL (looked up in the primary key's index, value by value)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        among = X.c.email == sa.any_(sa.bindparam("b_values", type_=ARRAY(sa.String)))
    else:
        among = X.c.email.in_(sa.select(sa.func.json_each(sa.bindparam("b_values")).table_valued("value").c.value))
    return sa.select(X.c.email, X.c.reason).where(among)


def suppressed_among(conn: sa.Connection, emails: list[str]) -> dict[str, str]:
    """{email: reason} for the suppressed ones among `emails` (plain or erased entries)."""
    keys = {erased_key(e): e for e in emails}
    values = list(emails) + list(keys)
    found: dict[str, str] = {}
    if len(values) <= SHORT_LIST:
        bound = values if conn.dialect.name == "postgresql" else json.dumps(values)
        rows = conn.execute(_among_short_list(conn.dialect.name), {"b_values": bound})
        return {keys.get(email, email): reason for email, reason in rows}
    for condition in in_values(conn, X.c.email, values):
        for email, reason in conn.execute(sa.select(X.c.email, X.c.reason).where(condition)):
            found[keys.get(email, email)] = reason
    return found


def suppress(conn: sa.Connection, email: str, reason: str, detail: str | None = None) -> None:
    """Never mail `email` again; its subscriber (if any) takes the matching status.

    An address already suppressed keeps its first reason: that is the one that explains it.
    """
    email = loose(email)
    now = utcnow()
    _insert_ignore(conn, X, [{"email": email, "reason": reason, "created_at": now, "detail": detail}])
    status = _STATUS_FOR_REASON.get(reason)
    if status is None:
        return
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if status == "unsubscribed":
        values["unsubscribed_at"] = now
    conn.execute(sa.update(S).where(S.c.email == email, S.c.status.in_(("pending", "active"))).values(**values))


def lift_unsubscribe(conn: sa.Connection, email: str) -> None:
    """A person who left or erased their data and now confirms a new subscription themselves may
    be mailed again; bounces and complaints stay."""
    conn.execute(sa.delete(X).where(X.c.email.in_([email, erased_key(email)]),
                                    X.c.reason.in_(("unsubscribed", "manual", "erased"))))


def record_event(conn: sa.Connection, kind: str, email: str | None, provider: str | None,
                 detail: dict[str, Any] | None) -> None:
    conn.execute(sa.insert(schema.events).values(at=utcnow(), kind=kind, email=email, provider=provider,
                                                 detail=detail))


def record_bounce(conn: sa.Connection, email: str, kind: BounceKind, provider: str,
                  detail: Any = None, soft_limit: int = 3) -> bool:
    """Record a bounce or complaint; True when the address is now suppressed.

    Hard bounces and complaints suppress at once. Soft bounces are counted on the
    subscriber and suppress once `soft_limit` of them have been seen.
    """
    if kind not in ("hard", "soft", "complaint"):
        raise ValueError(f"bounce kind {kind!r}: expected 'hard', 'soft' or 'complaint'")
    email = loose(email)
    event_detail = detail if isinstance(detail, dict) else ({"detail": str(detail)} if detail else None)
    record_event(conn, "complaint" if kind == "complaint" else f"{kind}_bounce", email, provider, event_detail)
    text = None if detail is None else str(detail)[:2000]
    if kind == "hard":
        suppress(conn, email, "hard_bounce", text)
        return True
    if kind == "complaint":
        suppress(conn, email, "complaint", text)
        return True
    conn.execute(sa.update(S).where(S.c.email == email).values(soft_bounces=S.c.soft_bounces + 1, updated_at=utcnow()))
    count = conn.execute(sa.select(S.c.soft_bounces).where(S.c.email == email)).scalar_one_or_none()
    if count is not None and count >= soft_limit:
        suppress(conn, email, "soft_bounce_limit", f"{count} soft bounces; last: {text or ''}".strip())
        return True
    return False
