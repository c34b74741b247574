"""The states a delivery and a mailing can be in: the one place that names them.

They are `StrEnum`s, so a member is its own string in SQL, JSON and logs, and a plain string
read back from the store compares equal to it. The store refuses any other value (CHECK
constraints, migration 0004), so a typo in a module fails loudly instead of stranding rows.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryState(StrEnum):
    """Where one mailing's copy for one subscriber stands in the ledger."""

    PENDING = "pending"  # waiting to be claimed (now, or at next_attempt_at for a retry)
    SENDING = "sending"  # claimed by a worker whose heartbeat keeps the claim
    SENT = "sent"  # the transport accepted it
    FAILED = "failed"  # refused for good, or out of retries
    SUPPRESSED = "suppressed"  # the address must not be mailed (bounce, complaint, erased)
    SKIPPED = "skipped"  # nothing to send this reader (a per-reader digest with no item for them)


class MailingStatus(StrEnum):
    """Where a mailing as a whole stands."""

    SENDING = "sending"  # deliveries are being handed out
    PAUSED = "paused"  # stopped by the operator or by too many failures; `paused_reason` says which
    DONE = "done"  # every delivery finished
    CANCELLED = "cancelled"  # withdrawn: never sent further, not shown in the archive


# Deliveries a sender still has to deal with.
UNFINISHED = (DeliveryState.PENDING, DeliveryState.SENDING)
# Mailings an edition carries on rather than replacing with a new one.
OPEN = (MailingStatus.SENDING, MailingStatus.PAUSED)


def check_clause(column: str, states: type[StrEnum]) -> str:
    """The SQL of a CHECK constraint allowing exactly `states` in `column`."""
    return f"{column} IN ({', '.join(repr(str(s)) for s in states)})"
