"""Attack: re-subscribing a pending address so that the owner's click confirms the attacker's
choices. Each link is bound to its own request; requests expire and are purged."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from newsletter.store import schema, utcnow
from newsletter.subscribers import registry
from tests.support.inbox import Inbox
from tests.support.serve import Served
from tests.support.subscribing import link_in, press, serve_site, session, subscribe

Q = schema.subscribe_requests


@pytest.fixture
def site(tmp_path: Path, store_url: str, inbox: Inbox, store: sa.Engine) -> Iterator[Served]:
    # An expired request from before the start: the mailer's first round purges it.
    with store.begin() as conn:
        conn.execute(sa.insert(Q).values(email="old@example.org", name="", language="en", editions=[], countries=[],
                                         page_language="en", requested_at=utcnow() - timedelta(hours=3),
                                         expires_at=utcnow() - timedelta(hours=1), state="mailed"))
    served = serve_site(tmp_path, store_url, inbox, web={"confirm_hours": 1})
    yield served
    served.stop()


def test_a_link_confirms_exactly_its_own_request(site: Served, store: sa.Engine, inbox: Inbox) -> None:
    owner, csrf = session(site, headers={"User-Agent": "Owner's browser"})
    assert subscribe(owner, csrf, "ana@example.org", name="Ana", editions=["daily-en"],
                     countries=["colombia"]).status_code == 200
    owners_mail = inbox.wait_for("ana@example.org")
    attacker, csrf2 = session(site, headers={"User-Agent": "Attacker"})
    assert subscribe(attacker, csrf2, "ana@example.org", name="=Not Ana", language="es",
                     editions=["semanal-es"]).status_code == 200
    # The owner opens the first email's link, the one sent for their own request.
    confirmed = press(owner, link_in(owners_mail, "/confirm/"))
    assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
    with store.connect() as conn:
        row = registry.find(conn, "ana@example.org")
        record = registry.data(conn, row.id)
        states = dict(conn.execute(sa.select(Q.c.name, Q.c.state).where(Q.c.email == "ana@example.org")).all())
    assert (row.name, row.language, row.editions, row.countries) == ("Ana", "en", ["daily-en"], ["colombia"])
    asked, confirm = record["consents"]
    assert (asked["action"], asked["user_agent"], asked["ip"]) == ("subscribe", "Owner's browser", "127.0.0.1")
    assert (confirm["action"], confirm["user_agent"]) == ("confirm", "Owner's browser")
    assert "Attacker" not in str(record)
    # The later request was neither applied nor consumed: it waits for its own link, if ever mailed.
    assert states["=Not Ana"] != "confirmed" and states["Ana"] == "confirmed"
    # The same link again changes nothing.
    link = link_in(owners_mail, "/confirm/")
    assert "You are subscribed" in owner.get(link).text
    assert owner.post(link, data={"csrf": csrf}).status_code == 400
    with store.connect() as conn:
        assert registry.find(conn, "ana@example.org").name == "Ana"


def test_requests_expire_and_are_purged(site: Served, store: sa.Engine, inbox: Inbox) -> None:
    browser, csrf = session(site)
    subscribe(browser, csrf, "late@example.org", name="Late")
    link = link_in(inbox.wait_for("late@example.org"), "/confirm/")
    with store.begin() as conn:  # an hour and a bit later
        conn.execute(sa.update(Q).where(Q.c.email == "late@example.org")
                     .values(expires_at=utcnow() - timedelta(minutes=1)))
    page = browser.get(link)
    assert page.status_code == 400 and "This link has expired" in page.text
    assert browser.post(link, data={"csrf": csrf}).status_code == 400
    with store.connect() as conn:
        assert registry.find(conn, "late@example.org") is None
        # The request from before the start was purged by the mailer's first round.
        assert conn.execute(sa.select(Q.c.id).where(Q.c.email == "old@example.org")).first() is None
