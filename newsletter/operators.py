"""Operator accounts: who may use the console and the operator API, and with which role.

An editor previews editions and sends tests; an admin may also send, pause, resume and look
after subscribers. Passwords are hashed with argon2id (memory-hard, so a stolen store does not
give them away cheaply); API tokens are random and only their SHA-256 is kept. Sign-in
failures lock the account for a while after `LOCKOUT_FAILURES` in a row.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from newsletter.errors import NewsletterError
from newsletter.store import schema, utcnow

ADMIN = "admin"
EDITOR = "editor"
ROLES = (ADMIN, EDITOR)
# What each role may do; admin includes editor's.
EDITOR_ACTIONS = frozenset({"view", "preview", "test_send"})
ADMIN_ACTIONS = EDITOR_ACTIONS | {"send", "pause", "resume", "subscribers"}
PERMISSIONS = {EDITOR: EDITOR_ACTIONS, ADMIN: ADMIN_ACTIONS}

LOCKOUT_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD = 12
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
TOKEN_PREFIX = "nlop_"

o = schema.operators
_hasher = PasswordHasher()
# Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("no such operator")


class OperatorError(NewsletterError):
    """An operator account cannot be created, found or used as asked."""


class ForbiddenError(NewsletterError):
    """The operator's role does not allow the action."""


@dataclass(frozen=True)
class Operator:
    id: int
    name: str
    role: str
    created_at: datetime
    has_token: bool = False

    def may(self, action: str) -> bool:
        return action in PERMISSIONS.get(self.role, frozenset())


def _operator(row: sa.Row) -> Operator:
    return Operator(row.id, row.name, row.role, row.created_at, row.token_hash is not None)


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise OperatorError(f"operator name {name!r}: use 1 to 64 letters, digits, '.', '_', '@' or '-', "
                            "starting with a letter or digit")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise OperatorError(f"the password is {len(password)} characters long: use at least {MIN_PASSWORD}")
    return password


def add(conn: sa.Connection, name: str, role: str, password: str) -> Operator:
    check_name(name)
    if role not in ROLES:
        raise OperatorError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    check_password(password)
    if conn.scalar(sa.select(o.c.id).where(o.c.name == name)) is not None:
        raise OperatorError(f"operator {name!r} exists already; `newsletter operators remove {name}` first")
    conn.execute(o.insert().values(name=name, role=role, password_hash=_hasher.hash(password),
                                   created_at=utcnow(), failed_logins=0))
    return get(conn, name)


def get(conn: sa.Connection, name: str) -> Operator:
    row = conn.execute(sa.select(o).where(o.c.name == name)).first()
    if row is None:
        raise OperatorError(f"no operator {name!r}; `newsletter operators list` shows them")
    return _operator(row)


def by_id(conn: sa.Connection, operator_id: int) -> Operator | None:
    row = conn.execute(sa.select(o).where(o.c.id == operator_id)).first()
    return _operator(row) if row else None


def listing(conn: sa.Connection) -> list[Operator]:
    return [_operator(r) for r in conn.execute(sa.select(o).order_by(o.c.name))]


def exist(conn: sa.Connection) -> bool:
    return conn.scalar(sa.select(o.c.id).limit(1)) is not None


def remove(conn: sa.Connection, name: str) -> None:
    """Remove the account; its sessions go with it (cascade), its token stops working at once."""
    operator = get(conn, name)
    conn.execute(schema.operator_sessions.delete().where(schema.operator_sessions.c.operator_id == operator.id))
    conn.execute(o.delete().where(o.c.id == operator.id))


def new_token(conn: sa.Connection, name: str) -> str:
    """A new API token for the operator (replacing any previous one); shown once, stored hashed."""
    operator = get(conn, name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    conn.execute(o.update().where(o.c.id == operator.id).values(token_hash=_sha256(token)))
    return token


def by_token(conn: sa.Connection, token: str) -> Operator | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = conn.execute(sa.select(o).where(o.c.token_hash == _sha256(token))).first()
    return _operator(row) if row else None


def tokens_exist(conn: sa.Connection) -> bool:
    return conn.scalar(sa.select(o.c.id).where(o.c.token_hash.is_not(None)).limit(1)) is not None


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class LockedOut(OperatorError):
    """Too many failed sign-ins in a row: the account waits until `until`."""

    def __init__(self, name: str, until: datetime) -> None:
        super().__init__(f"operator {name!r} is locked after {LOCKOUT_FAILURES} failed sign-ins until "
                         f"{until:%H:%M} UTC")
        self.until = until


def authenticate(engine: sa.Engine, name: str, password: str, now: datetime | None = None) -> Operator | None:
    """The operator when the password is right, None when not; LockedOut while the account is locked.

    A failure counts toward the lockout; a success resets the count. The hash is re-made when
    argon2's recommended parameters have grown since it was made.
    """
    now = now or utcnow()
    with engine.connect() as conn:
        row = conn.execute(sa.select(o).where(o.c.name == name)).first()
    if row is None:
        _verify(_DUMMY_HASH, password)
        return None
    if row.locked_until is not None and row.locked_until > now:
        raise LockedOut(name, row.locked_until)
    if not _verify(row.password_hash, password):
        failures = row.failed_logins + 1
        locked = now + LOCKOUT if failures >= LOCKOUT_FAILURES else None
        with engine.begin() as conn:
            conn.execute(o.update().where(o.c.id == row.id).values(
                failed_logins=0 if locked else failures, locked_until=locked))
        if locked:
            raise LockedOut(name, locked)
        return None
    values: dict[str, object] = {"failed_logins": 0, "locked_until": None}
    if _hasher.check_needs_rehash(row.password_hash):
        values["password_hash"] = _hasher.hash(password)
    with engine.begin() as conn:
        conn.execute(o.update().where(o.c.id == row.id).values(**values))
    return _operator(row)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Console sessions: idle ones end after SESSION_IDLE, every one after SESSION_MAX.
SESSION_IDLE = timedelta(minutes=30)
SESSION_MAX = timedelta(hours=12)
sessions = schema.operator_sessions


@dataclass(frozen=True)
class Session:
    operator: Operator
    csrf: str
    created_at: datetime


def open_session(conn: sa.Connection, operator: Operator, origin: str, now: datetime | None = None) -> str:
    """A new session for the operator; returns the cookie's token (the store keeps its hash)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    conn.execute(sessions.delete().where(sessions.c.last_seen_at < now - SESSION_MAX))
    conn.execute(sessions.insert().values(id=_sha256(token), operator_id=operator.id, csrf=secrets.token_urlsafe(24),
                                          created_at=now, last_seen_at=now, origin=origin[:64]))
    return token


def session(conn: sa.Connection, token: str, now: datetime | None = None) -> Session | None:
    """The live session the cookie names (and note it was used), or None when it ended."""
    now = now or utcnow()
    row = conn.execute(sa.select(sessions).where(sessions.c.id == _sha256(token))).first()
    if row is None:
        return None
    if row.last_seen_at < now - SESSION_IDLE or row.created_at < now - SESSION_MAX:
        conn.execute(sessions.delete().where(sessions.c.id == row.id))
        return None
    operator = by_id(conn, row.operator_id)
    if operator is None:
        return None
    conn.execute(sessions.update().where(sessions.c.id == row.id).values(last_seen_at=now))
    return Session(operator, row.csrf, row.created_at)


def close_session(conn: sa.Connection, token: str) -> None:
    conn.execute(sessions.delete().where(sessions.c.id == _sha256(token)))
