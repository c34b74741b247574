"""Leases in the store, on a real SQLite file and a real PostgreSQL: one holder at a time."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from newsletter import locks
from newsletter.errors import LockedError
from newsletter.store import schema, utcnow

TTL = timedelta(minutes=5)


def test_a_live_lease_refuses_a_second_owner_and_is_free_after_release(engine: sa.Engine) -> None:
    with locks.lease(engine, "edition:daily-en", "scheduler-a", TTL):
        with pytest.raises(LockedError, match="held by scheduler-a"):
            with locks.lease(engine, "edition:daily-en", "scheduler-b", TTL):
                pass
        # Another name is another lease.
        with locks.lease(engine, "edition:weekly-es", "scheduler-b", TTL):
            pass
    with locks.lease(engine, "edition:daily-en", "scheduler-b", TTL):
        pass
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.locks)).scalar_one() == 0


def test_an_expired_lease_is_taken_over_and_its_old_owner_learns_it_lost(engine: sa.Engine) -> None:
    crashed = locks.Lease(engine, "edition:daily-en", "crashed", TTL, locks.acquire(engine, "edition:daily-en", "crashed", TTL))
    with engine.begin() as conn:
        conn.execute(schema.locks.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    with locks.lease(engine, "edition:daily-en", "successor", TTL) as held:
        with pytest.raises(LockedError, match="lost the lease"):
            crashed.renew()
        # The old owner's release must not free the successor's lease.
        locks.release(engine, "edition:daily-en", "crashed")
        with pytest.raises(LockedError):
            locks.acquire(engine, "edition:daily-en", "third", TTL)
        before = held.expires_at
        held.renew()
        assert held.expires_at > before


def test_racing_threads_get_one_holder(engine: sa.Engine) -> None:
    barrier = threading.Barrier(8)
    winners: list[str] = []
    losers: list[str] = []

    def contend(owner: str) -> None:
        barrier.wait()
        try:
            locks.acquire(engine, "edition:daily-en", owner, TTL)
            winners.append(owner)
        except LockedError:
            losers.append(owner)

    threads = [threading.Thread(target=contend, args=(f"owner-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(losers) == 7


def test_a_heartbeat_keeps_a_short_lease_alive_while_the_work_runs(engine: sa.Engine) -> None:
    short = timedelta(seconds=0.6)
    with locks.lease(engine, "collect", "collector-a", short, heartbeat=True):
        time.sleep(1.5)  # well past the TTL: only the heartbeat keeps it
        with pytest.raises(LockedError, match="held by collector-a"):
            locks.acquire(engine, "collect", "collector-b", short)
    # Without a heartbeat the same lease lapses, and a successor takes it over.
    locks.acquire(engine, "collect", "crashed-collector", short)
    time.sleep(0.8)
    with locks.lease(engine, "collect", "collector-b", short):
        pass
