"""Attack: subscribe bombing. Confirmation emails are limited per address (3 a day) whoever
asks, and subscribe POSTs per client in the store, so every `serve` process counts together;
X-Forwarded-For is believed only from a configured trusted proxy."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa

from tests.support.inbox import Inbox
from tests.support.serve import Served, free_port
from tests.support.subscribing import session, site_config, subscribe


def settle(inbox: Inbox, seconds: float = 3.0) -> None:
    """Wait until no message has arrived for a while: the mailer has done its rounds."""
    count, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < seconds:
        if len(inbox.messages) != count:
            count, quiet_since = len(inbox.messages), time.monotonic()
        time.sleep(0.2)


def test_three_proxied_clients_get_a_victim_three_emails(tmp_path: Path, store_url: str, store: sa.Engine,
                                                          inbox: Inbox) -> None:
    port = free_port()
    config = site_config(tmp_path, store_url, inbox, port,
                         web={"trusted_proxies": ["127.0.0.1"], "subscribe_rate_per_hour": 20})
    site = Served(config, port)
    try:
        for ip in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
            browser, csrf = session(site, headers={"X-Forwarded-For": ip})
            codes = [subscribe(browser, csrf, "victim@example.org").status_code for _ in range(20)]
            assert codes == [200] * 20  # each client is within its own limit
        settle(inbox)
        assert len(inbox.all_to("victim@example.org")) == 3
        # Behind the trusted proxy, the client's address is the one the proxy saw.
        browser, csrf = session(site, headers={"X-Forwarded-For": "203.0.113.1"})
        assert subscribe(browser, csrf, "other@example.org").status_code == 429
    finally:
        site.stop()


def test_client_limits_hold_across_processes_and_ignore_untrusted_forwarding(
        tmp_path: Path, store_url: str, store: sa.Engine, inbox: Inbox) -> None:
    first_port, second_port = free_port(), free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = Served(site_config(tmp_path / "a", store_url, inbox, first_port, web={"subscribe_rate_per_hour": 6}),
                   first_port)
    second = Served(site_config(tmp_path / "b", store_url, inbox, second_port, web={"subscribe_rate_per_hour": 6}),
                    second_port)
    try:
        codes = []
        for i in range(8):
            site = first if i % 2 else second
            # No trusted proxy is configured: a made-up X-Forwarded-For changes nothing.
            browser, csrf = session(site, headers={"X-Forwarded-For": f"198.51.100.{i}"})
            codes.append(subscribe(browser, csrf, f"r{i}@example.org").status_code)
        assert codes == [200] * 6 + [429] * 2
    finally:
        first.stop()
        second.stop()
