"""The audit log: every operator action, who did it, when, from where, through which channel.

`Actor` says who acts; the operations layer records what it did (`record`), whatever the
channel (cli, api, console), so the log is complete without each caller remembering it.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from newsletter.operators import ADMIN, PERMISSIONS, ForbiddenError
from newsletter.store import schema, utcnow

CLI = "cli"
API = "api"
CONSOLE = "console"

a = schema.audit_log


@dataclass(frozen=True)
class Actor:
    """Who acts: an operator's name and role, the channel, and where the request came from."""

    name: str
    role: str
    channel: str
    origin: str = ""

    def require(self, action: str) -> None:
        if action not in PERMISSIONS.get(self.role, frozenset()):
            raise ForbiddenError(f"operator {self.name!r} is {self.role}: {action.replace('_', ' ')} needs the admin role")


def cli_actor() -> Actor:
    """Whoever runs the CLI on the machine holds the config and the store: an admin."""
    return Actor(getpass.getuser(), ADMIN, CLI, f"{getpass.getuser()}@{socket.gethostname()}")


def record(conn: sa.Connection, actor: Actor, action: str, target: str = "", detail: str = "",
           now: datetime | None = None) -> None:
    conn.execute(a.insert().values(at=now or utcnow(), operator=actor.name[:128], channel=actor.channel,
                                   origin=actor.origin[:128], action=action, target=target[:256] or None,
                                   detail=detail or None))


def recent(conn: sa.Connection, limit: int = 50) -> list[dict[str, Any]]:
    rows = conn.execute(sa.select(a).order_by(a.c.id.desc()).limit(limit))
    return [{"at": r.at.isoformat(), "operator": r.operator, "channel": r.channel, "origin": r.origin,
             "action": r.action, "target": r.target, "detail": r.detail} for r in rows]
