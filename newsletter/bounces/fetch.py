"""One pass over the bounce mailbox.

`fetch(config, engine)` reads the mailbox once: each message is classified (`parse.classify`),
applied to the store (`apply.apply`, once per message and address), then moved to the processed
folder, or left for a person when it is none of ours. One message's failure never stops a fetch.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from newsletter.bounces import apply as applying
from newsletter.bounces.mailbox import Mailbox, MailboxError, open_mailbox
from newsletter.bounces.parse import MAX_MESSAGE_BYTES, Kind, Report, classify
from newsletter.config import Config

log = logging.getLogger(__name__)


@dataclass
class FetchSummary:
    read: int = 0
    kinds: Counter = field(default_factory=Counter)  # hard, soft, complaint, auto_reply, unknown
    recorded: int = 0  # (message, address) pairs applied now
    duplicates: int = 0  # already applied by an earlier or concurrent fetch
    unmatched: int = 0  # addresses not tied to a delivery of ours: nothing changed
    suppressed: int = 0
    left_for_person: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"read": self.read, "kinds": {k.value: self.kinds.get(k.value, 0) for k in Kind},
                "recorded": self.recorded, "duplicates": self.duplicates, "unmatched": self.unmatched,
                "suppressed": self.suppressed, "left_for_person": self.left_for_person, "errors": self.errors}


def fetch(config: Config, engine: sa.Engine, mailbox: Mailbox | None = None) -> FetchSummary:
    """Read and apply what is new in the bounce mailbox (MailboxError when it cannot be reached)."""
    key = config.secret_key()
    box = mailbox or open_mailbox(config)
    bounces = config.bounces
    if bounces is None:
        raise MailboxError("bounces: not configured; add a [bounces] section (see the README's Bounces section)")
    summary = FetchSummary()
    try:
        for message in box.messages(bounces.max_messages):
            summary.read += 1
            try:
                report = (classify(message.raw) if message.raw else
                          Report(Kind.UNKNOWN, f"size:{message.ref}", reason=f"larger than {MAX_MESSAGE_BYTES} bytes"))
                summary.kinds[report.kind.value] += 1
                with engine.begin() as conn:
                    done = applying.apply(conn, key, bounces.return_path, report, source=bounces.kind,
                                          soft_limit=config.transport.soft_bounce_limit)
                summary.recorded += done.recorded
                summary.duplicates += done.duplicates
                summary.unmatched += done.unmatched
                summary.suppressed += done.suppressed
                if report.kind is Kind.UNKNOWN:
                    box.left(message.ref)
                    summary.left_for_person += 1
                    log.info("bounce mailbox: left for a person ref=%s reason=%s", message.ref, report.reason)
                else:
                    box.processed(message.ref)
            except Exception as exc:  # one message, whatever went wrong with it, must not stop the others
                log.warning("bounce mailbox: message not processed ref=%s error=%s", message.ref, exc)
                summary.errors.append(f"message {message.ref}: {type(exc).__name__}: {exc}"[:300])
    finally:
        box.close()
    return summary
