"""Retry policy: what a transport's answer means for a delivery, and when a mailing should pause.

Pure functions of the config and the answers, so the policy is tested with data and lives in
one place whatever loop applies it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Mapping, Sequence

from newsletter.config import Config
from newsletter.send.claims import Claimed, Outcome
from newsletter.send.transport import Result
from newsletter.states import DeliveryState

# Longest wait honoured from a Retry-After, so a silly header cannot stall a send for a day.
MAX_RETRY_AFTER = 3600.0


def backoff(config: Config, attempts: int, retry_after: float | None) -> float:
    """Seconds before the next attempt: the server's Retry-After, else doubling from the base."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    return min(config.transport.retry_base_seconds * 2 ** max(attempts - 1, 0), MAX_RETRY_AFTER)


def judge(config: Config, claimed: Sequence[Claimed], results: Sequence[Result],
          now: datetime) -> list[Outcome]:
    """Turn the transport's answers into ledger outcomes."""
    outcomes = []
    for c, r in zip(claimed, results):
        attempts = c.attempts + 1
        if r.ok:
            outcomes.append(Outcome(c.id, DeliveryState.SENT, provider_message_id=r.provider_message_id))
        elif r.error.permanent:
            outcomes.append(Outcome(c.id, DeliveryState.FAILED, str(r.error)))
        elif attempts > config.transport.retries:
            outcomes.append(Outcome(c.id, DeliveryState.FAILED, f"gave up after {attempts} attempts: {r.error}"))
        else:
            delay = backoff(config, attempts, r.error.retry_after)
            outcomes.append(Outcome(c.id, DeliveryState.PENDING, str(r.error), next_attempt_at=now + timedelta(seconds=delay)))
    return outcomes


def bounce_kind(result: Result) -> str | None:
    """How a failed delivery counts against its address: a hard bounce suppresses at once; a
    temporary error that outlasted every retry counts as a soft bounce, so soft_bounce_limit
    holds for SMTP as for webhooks; any other permanent error is the message's, not the address's."""
    if result.hard_bounce:
        return "hard"
    return "soft" if not result.error.permanent else None


def failure_reason(config: Config, counts: Mapping[str, int], last_error: str) -> str | None:
    """Why the mailing should pause, or None: too many of the finished deliveries failed."""
    sent, failed = counts[DeliveryState.SENT], counts[DeliveryState.FAILED]
    finished = sent + failed
    threshold = config.transport.failure_threshold
    if finished < config.transport.failure_min or failed <= threshold * finished:
        return None
    return (f"{failed} of {finished} finished deliveries failed (threshold {threshold:.0%}); "
            f"last error: {last_error}")
