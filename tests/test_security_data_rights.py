"""Attack: a forwarded digest's preferences link used to export a subscriber's data and erase
them. Data is reached only through a fresh single-use link mailed to the address, valid for an
hour; erasure forgets the person without banning them."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from newsletter import tokens
from newsletter.store import schema, utcnow
from newsletter.subscribers import registry
from newsletter.subscribers.address import erased_key
from newsletter.subscribers.profile import Profile
from tests.support.inbox import Inbox
from tests.support.serve import Served
from tests.support.subscribing import CSRF, link_in, press, serve_site, session, subscribe

KEY = b"test-secret-key-0123456789abcdefghijkl"


@pytest.fixture
def site(tmp_path: Path, store_url: str, inbox: Inbox, store: sa.Engine) -> Iterator[Served]:
    served = serve_site(tmp_path, store_url, inbox)
    yield served
    served.stop()


def wait_count(inbox: Inbox, to: str, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(inbox.all_to(to)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(inbox.all_to(to)) == count


def test_a_forwarded_preferences_link_reaches_no_data(site: Served, store: sa.Engine, inbox: Inbox) -> None:
    with store.begin() as conn:
        sid = registry.add(conn, "owner@example.org", Profile("Owner", "en", (), ()),
                           registry.Consent("198.51.100.1", "Owner UA"), source="test")[0]
    forwarded = f"/preferences/{tokens.make(KEY, 'preferences', sid)}"
    stranger, csrf = session(site, forwarded)
    page = stranger.get(forwarded)
    assert "198.51.100.1" not in page.text and "/data/" not in page.text
    answer = stranger.post(forwarded + "/data", data={"csrf": csrf})
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    assert "198.51.100.1" not in answer.text and "/data/" not in answer.text
    # The link went to the owner's mailbox, not to whoever pressed the button.
    link = link_in(inbox.wait_for("owner@example.org"), "/data/")
    assert [m["To"] for m in inbox.messages] == ["owner@example.org"]
    # A data token as the old pages made it (the subscriber's id, 24 hours) opens nothing now.
    assert stranger.get(f"/data/{tokens.make(KEY, 'preferences', sid)}").status_code == 400
    token = link.split("/data/")[1].split("?")[0]
    tampered = "/data/" + token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert stranger.post(tampered, data={"csrf": csrf, "action": "download"}).status_code == 400
    # The owner's link: one hour, once.
    owner, _ = session(site)
    download = press(owner, link, action="download")
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
    assert download.json()["consents"][0]["ip"] == "198.51.100.1"
    assert press_fails(owner, link)
    stranger.post(forwarded + "/data", data={"csrf": csrf})
    wait_count(inbox, "owner@example.org", 2)
    late = link_in(inbox.all_to("owner@example.org")[-1], "/data/")
    with store.begin() as conn:
        conn.execute(sa.update(schema.data_links).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert press_fails(owner, late)
    with store.connect() as conn:
        assert registry.find(conn, "owner@example.org").status == "active"


def press_fails(browser, link: str) -> bool:
    page = browser.get(link)
    return page.status_code == 400 and "already used or has expired" in page.text


def test_erasure_forgets_but_does_not_ban(site: Served, store: sa.Engine, inbox: Inbox) -> None:
    with store.begin() as conn:
        sid = registry.add(conn, "erase.me@example.org", Profile("Eve", "en", (), ()), registry.Consent(),
                           source="test")[0]
    preferences = f"/preferences/{tokens.make(KEY, 'preferences', sid)}"
    browser, csrf = session(site, preferences)
    browser.post(preferences + "/data", data={"csrf": csrf})
    erased = press(browser, link_in(inbox.wait_for("erase.me@example.org"), "/data/"), action="erase")
    assert erased.status_code == 200 and "Your data is erased" in erased.text
    with store.connect() as conn:
        dump = "\n".join(str(r) for t in (schema.subscribers, schema.consents, schema.suppressions,
                                           schema.subscribe_requests, schema.data_links)
                         for r in conn.execute(sa.select(t)))
    assert "erase.me@example.org" not in dump and erased_key("erase.me@example.org") in dump
    # They come back whenever they like, with a new double opt-in.
    subscribe(browser, CSRF.search(browser.get("/subscribe").text).group(1), "erase.me@example.org", name="Eve")
    wait_count(inbox, "erase.me@example.org", 2)
    confirmed = press(browser, link_in(inbox.all_to("erase.me@example.org")[-1], "/confirm/"))
    assert "You are subscribed" in confirmed.text
    with store.connect() as conn:
        row = registry.find(conn, "erase.me@example.org")
        assert row.status == "active" and row.id != sid
        assert registry.suppression_reason(conn, "erase.me@example.org") is None
