"""Attack: telling members apart by how long the subscribe answer takes. The answer does the
same work whatever the address's state (one rate hit and one request row; the mailer decides
later), so a classifier on the response time does no better than chance."""

from __future__ import annotations

import random
import secrets
import time
from pathlib import Path
from statistics import median

import pytest

from newsletter.store import open_store
from newsletter.subscribers import record_bounce, registry
from newsletter.subscribers.profile import Profile
from tests.support.configs import base_config, write_config
from tests.support.serve import Served, free_port
from tests.support.subscribing import session, subscribe

PROBES = 1000  # per state
STATES = ("new", "pending", "active", "unsubscribed", "bounced")


def best_threshold_accuracy(train: dict[int, list[float]], test: dict[int, list[float]]) -> float:
    """Pick the threshold (and side) that best separates class 0 from class 1 on `train`;
    its accuracy on `test`, which it has not seen."""
    points = sorted([(t, 0) for t in train[0]] + [(t, 1) for t in train[1]])
    total = {0: len(train[0]), 1: len(train[1])}
    below = {0: 0, 1: 0}
    best, best_at, best_side = 0.0, points[0][0], 1
    for t, label in points:
        below[label] += 1
        # side 1: "at or below the threshold means class 0"
        for side in (0, 1):
            right = (below[0] + total[1] - below[1]) if side else (below[1] + total[0] - below[0])
            accuracy = right / (total[0] + total[1])
            if accuracy > best:
                best, best_at, best_side = accuracy, t, side
    right = 0
    for label, times in test.items():
        for t in times:
            guess = (0 if t <= best_at else 1) if best_side else (1 if t <= best_at else 0)
            right += guess == label
    return right / (len(test[0]) + len(test[1]))


@pytest.mark.timeout(1500)  # 5,000 probes through a real server on a shared machine
def test_a_classifier_cannot_tell_address_states_apart(tmp_path: Path, store_url: str) -> None:
    port = free_port()
    data = base_config(store_url)
    data["publication"]["public_url"] = f"http://127.0.0.1:{port}"
    data["editions"] = [{"name": "daily-en", "language": "en"}]
    data["web"] = {"subscribe_rate_per_hour": 100_000}
    engine = open_store(store_url)
    with engine.begin() as conn:
        for email in ("active@example.org", "left@example.org", "bounced@example.org"):
            registry.add(conn, email, Profile("", "en", (), ()), registry.Consent(), source="test")
        registry.unsubscribe(conn, registry.find(conn, "left@example.org").id, registry.Consent(), how="page")
        record_bounce(conn, "bounced@example.org", "hard", "smtp", "550 no such user")
    engine.dispose()
    address = {"pending": "pending@example.org", "active": "active@example.org",
               "unsubscribed": "left@example.org", "bounced": "bounced@example.org"}
    site = Served(write_config(tmp_path, data), port)
    try:
        client, csrf = session(site)
        subscribe(client, csrf, address["pending"])  # pending from here on
        time.sleep(1.5)
        for i in range(100):  # warm up: code paths, caches, connection
            subscribe(client, csrf, f"warm{i}@example.org")
        order = [state for state in STATES for _ in range(PROBES)]
        random.Random(11).shuffle(order)
        times: dict[str, list[float]] = {state: [] for state in STATES}
        for state in order:
            email = address.get(state) or f"new-{secrets.token_hex(6)}@example.org"
            started = time.perf_counter()
            answer = subscribe(client, csrf, email)
            times[state].append(time.perf_counter() - started)
            assert answer.status_code == 200
        client.close()
    finally:
        site.stop()
    report = {state: round(median(t) * 1000, 2) for state, t in times.items()}
    worst = 0.0
    for i, a in enumerate(STATES):
        for b in STATES[i + 1:]:
            train = {0: times[a][0::2], 1: times[b][0::2]}
            test = {0: times[a][1::2], 1: times[b][1::2]}
            accuracy = best_threshold_accuracy(train, test)
            worst = max(worst, accuracy)
            assert accuracy <= 0.55, f"{a} vs {b}: {accuracy:.3f} (median ms {report})"
    print(f"timing: medians in ms {report}; best pairwise held-out accuracy {worst:.3f}")
