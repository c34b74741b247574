"""A send that is killed or stopped, and the resume after it, as an operator lives through them.

`kill -9` of the whole process group at chosen and random moments, on SQLite and PostgreSQL,
then an immediate `send --resume`: every subscriber gets the digest, no more copies twice than
the documented window (one batch per connection), and the resume never waits out more than the
claim lease. SIGTERM and Ctrl-C: the batch in flight is finished and recorded, nothing more is
claimed, the rest is given back, and the command says where it stopped; `run` and `serve` too.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import httpx
import pytest
import sqlalchemy as sa

from newsletter.store import open_store
from tests.support.cli import run_cli
from tests.support.sending import make_mailing, mailing, send_config, states
from tests.support.serve import Served, free_port
from tests.support.smtpd import Behaviour, SMTPServer

ENV = {"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdefghijkl"}
CONNECTIONS = 2
BATCH = 5
LEASE_SECONDS = 3.0
# Far longer than the lease: a resume that waited on a timeout-based lease would show it.
TIMEOUT_SECONDS = 30.0
OPERATOR_TOKEN = "operator-token-0123456789abcdefghijkl"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-0123456789abcdefghijkl")


def emails(n: int) -> list[str]:
    return [f"reader{i}@example.net" for i in range(n)]


def start_send(config: Path, *args: str) -> subprocess.Popen[str]:
    """`newsletter send daily-en` as the leader of its own process group, like a shell job."""
    return subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(config), "send", "daily-en", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV},
                            start_new_session=True)


def wait_for(predicate: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def sent_in_ledger(engine: sa.Engine, mailing_id: int) -> int:
    return list(states(engine, mailing_id).values()).count("sent")


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def _sending(tmp_path: Path, store_url: str, port: int, n: int) -> tuple[sa.Engine, int, Path, subprocess.Popen[str]]:
    """A mailing to `n` readers and `newsletter send --resume` started on it, sending to `port`
    over CONNECTIONS connections in batches of BATCH: (store, mailing id, config, the command)."""
    config, path = send_config(tmp_path, store_url, kind="smtp", port=port, connections=CONNECTIONS,
                               batch_size=BATCH, claim_lease_seconds=LEASE_SECONDS, timeout_seconds=TIMEOUT_SECONDS)
    engine = open_store(store_url)
    mailing_id = make_mailing(config, engine, emails(n))
    return engine, mailing_id, path, start_send(path, "--resume")


@pytest.mark.parametrize("moment", ["before-first-claim", "mid-batch", "after-a-record", "random"])
def test_kill_9_of_the_group_then_an_immediate_resume_sends_everyone_once_but_the_window(
        tmp_path: Path, store_url: str, moment: str) -> None:
    n = 60
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    with SMTPServer(Behaviour(delay=0.03)) as server:
        engine, mailing_id, path, proc = _sending(tmp_path, store_url, server.port, n)
        received = server.recorder.messages
        if moment == "before-first-claim":
            time.sleep(rng.uniform(0.0, 0.3))
        elif moment == "mid-batch":
            target = rng.choice([k for k in range(2, 40) if k % BATCH])
            wait_for(lambda: len(received) >= target)
        elif moment == "after-a-record":
            target = rng.randrange(1, 8) * BATCH
            wait_for(lambda: sent_in_ledger(engine, mailing_id) >= target)
        else:
            time.sleep(rng.uniform(0.0, 4.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_for(lambda: group_gone(proc.pid), timeout=10)
        settled = len(received)
        time.sleep(0.3)
        assert len(received) == settled, "a worker outlived the kill"
        started = time.monotonic()
        resumed = run_cli("send", "daily-en", "--resume", config=path, env=ENV, timeout=120)
        took = time.monotonic() - started
        assert resumed.returncode == 0, (seed, resumed.stderr)
    counts = collections.Counter(server.recorder.recipients())
    assert set(counts) == set(emails(n)), seed
    duplicates = sum(c - 1 for c in counts.values())
    # The documented window: one claimed batch per connection, accepted but not yet recorded.
    assert duplicates <= CONNECTIONS * BATCH, (seed, duplicates)
    assert set(states(engine, mailing_id).values()) == {"sent"}
    assert mailing(engine, mailing_id).status == "done"
    # Claims of the killed workers came back within the lease, not after a timeout-sized one.
    assert took < TIMEOUT_SECONDS, (seed, took)
    engine.dispose()


def _send_workers(pid: int) -> list[int]:
    """The command's send worker processes (multiprocessing's spawned children)."""
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_killed_alone_leaves_its_batch_to_the_other_within_the_lease(tmp_path: Path, store_url: str) -> None:
    """The command renews its workers' claims; once one worker dies, its claims must stop being
    renewed, or the other worker would wait for them for ever. The survivor takes them over
    after one lease and finishes the mailing in the same run, which then says a worker died."""
    n = 80
    with SMTPServer(Behaviour(delay=0.03)) as server:
        engine, mailing_id, _, proc = _sending(tmp_path, store_url, server.port, n)
        workers: list[int] = []

        def two_workers_sending() -> bool:
            workers[:] = _send_workers(proc.pid)
            return len(workers) == 2 and len(server.recorder.messages) >= 3
        wait_for(two_workers_sending)
        os.kill(workers[0], signal.SIGKILL)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail("the surviving worker never got the dead one's claims back: the send hung")
    assert proc.returncode != 0, (out, err)
    assert "1 send worker(s) died" in err and "--resume" in err, err
    counts = collections.Counter(server.recorder.recipients())
    assert set(counts) == set(emails(n))
    assert sum(c - 1 for c in counts.values()) <= BATCH
    assert set(states(engine, mailing_id).values()) == {"sent"}
    assert mailing(engine, mailing_id).status == "done"
    engine.dispose()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_finishes_the_message_in_flight_records_it_and_gives_the_rest_back(
        tmp_path: Path, store_url: str, how: signal.Signals) -> None:
    n = 60
    with SMTPServer(Behaviour(delay=0.1)) as server:
        engine, mailing_id, path, proc = _sending(tmp_path, store_url, server.port, n)
        wait_for(lambda: len(server.recorder.messages) >= 7)
        if how == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole group
        else:
            proc.send_signal(signal.SIGTERM)  # a service manager stopping the main process
        stopped_at = time.monotonic()
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - stopped_at
        accepted = list(server.recorder.recipients())
        time.sleep(0.3)
        assert len(server.recorder.messages) == len(accepted)
        assert proc.returncode == 128 + how, err
        # Bounded by the message in flight (one transport timeout), not by what was left.
        assert took < TIMEOUT_SECONDS
        ledger = states(engine, mailing_id)
        # Everything the relay accepted is recorded as sent; nothing is left claimed; the rest waits.
        assert sorted(e for e, s in ledger.items() if s == "sent") == sorted(accepted)
        assert set(ledger.values()) == {"sent", "pending"}
        assert mailing(engine, mailing_id).status == "sending"
        left = n - len(accepted)
        assert f"stopped by {how.name}" in err and f"{left} deliveries left" in err and "--resume" in err, err
        resumed = run_cli("send", "daily-en", "--resume", config=path, env=ENV, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
    assert sorted(server.recorder.recipients()) == sorted(emails(n))
    assert set(states(engine, mailing_id).values()) == {"sent"}
    engine.dispose()


def test_a_second_ctrl_c_stops_at_once(tmp_path: Path, sqlite_url: str) -> None:
    n = 40
    with SMTPServer(Behaviour(delay=5.0)) as server:
        config, path = send_config(tmp_path, sqlite_url, kind="smtp", port=server.port, connections=CONNECTIONS,
                                   batch_size=BATCH, claim_lease_seconds=LEASE_SECONDS,
                                   timeout_seconds=TIMEOUT_SECONDS)
        engine = open_store(sqlite_url)
        mailing_id = make_mailing(config, engine, emails(n))
        proc = start_send(path, "--resume")
        wait_for(lambda: "sending" in states(engine, mailing_id).values())
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.2)
        pressed = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        # The message in flight takes five seconds at this relay; the second Ctrl-C does not wait for it.
        assert time.monotonic() - pressed < 4.0
        wait_for(lambda: group_gone(proc.pid), timeout=10)
    assert proc.returncode == 130, err
    assert "stopped by SIGINT, at once" in err and "--resume" in err, err
    engine.dispose()


def _stopped_cleanly(engine: sa.Engine, mailing_id: int, accepted: list[str]) -> None:
    """What a wound-down send leaves: every copy the relay took recorded sent, nothing claimed, the rest pending."""
    ledger = states(engine, mailing_id)
    assert sorted(e for e, s in ledger.items() if s == "sent") == sorted(accepted)
    assert set(ledger.values()) == {"sent", "pending"}


def test_the_scheduler_winds_its_send_down_on_sigterm_and_says_where_it_stopped(tmp_path: Path, sqlite_url: str) -> None:
    n = 60
    with SMTPServer(Behaviour(delay=0.1)) as server:
        config, path = send_config(tmp_path, sqlite_url, kind="smtp", port=server.port, connections=CONNECTIONS,
                                   batch_size=BATCH, claim_lease_seconds=LEASE_SECONDS,
                                   timeout_seconds=TIMEOUT_SECONDS)
        engine = open_store(sqlite_url)
        mailing_id = make_mailing(config, engine, emails(n))
        proc = subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(path), "run"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV})
        wait_for(lambda: len(server.recorder.messages) >= 7)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        accepted = list(server.recorder.recipients())
    assert proc.returncode == 143, err
    _stopped_cleanly(engine, mailing_id, accepted)
    assert f"stopped by SIGTERM: mailing {mailing_id} has {n - len(accepted)} deliveries left" in err
    assert "newsletter send daily-en --resume" in err
    engine.dispose()


def test_serve_winds_its_background_send_down_when_it_is_stopped(tmp_path: Path, sqlite_url: str) -> None:
    n = 60
    with SMTPServer(Behaviour(delay=0.1)) as server:
        config, path = send_config(tmp_path, sqlite_url, kind="smtp", port=server.port, connections=CONNECTIONS,
                                   batch_size=BATCH, claim_lease_seconds=LEASE_SECONDS,
                                   timeout_seconds=TIMEOUT_SECONDS)
        engine = open_store(sqlite_url)
        mailing_id = make_mailing(config, engine, emails(n))
        served = Served(path, free_port(), env={"NEWSLETTER_OPERATOR_TOKEN": OPERATOR_TOKEN})
        try:
            answer = httpx.post(served.url + "/api/editions/daily-en/send",
                                headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}, timeout=30)
            assert answer.status_code == 202 and answer.json()["mailing_id"] == mailing_id
            wait_for(lambda: len(server.recorder.messages) >= 7)
            served.process.send_signal(signal.SIGTERM)
            served.process.wait(timeout=60)
        finally:
            served.stop()
        accepted = list(server.recorder.recipients())
    _stopped_cleanly(engine, mailing_id, accepted)
    assert len(accepted) < n
    assert "send stopped" in served.log.read_text()
    engine.dispose()
