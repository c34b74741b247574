"""The list on a real SQLite file and a real PostgreSQL: who gets mailed, who never again."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.config import EditionConfig, parse
from newsletter.errors import SubscriberError
from newsletter.store import schema, utcnow
from newsletter.subscribers import audience, record_bounce, suppress
from newsletter.subscribers import registry
from newsletter.subscribers import requests as subscribe_requests
from newsletter.subscribers.address import erased_key, normalise
from newsletter.subscribers.audience import Plan, groups, planned_rows
from newsletter.subscribers.audience import count as audience_count
from newsletter.subscribers.profile import Profile, Vocabulary
from tests.support.configs import base_config

DAILY_EN = EditionConfig(name="daily-en", language="en")
OPERATOR = registry.Consent()


def vocabulary(tmp_path: Path) -> Vocabulary:
    data = base_config("sqlite:///unused")
    data["editions"] = [{"name": "daily-en", "language": "en"}, {"name": "weekly-en", "language": "en"},
                        {"name": "weekly-es", "language": "es"}]
    return Vocabulary(parse(data, tmp_path / "config.toml"))


def add(conn: sa.Connection, email: str, language: str = "en", editions: tuple[str, ...] = (),
        countries: tuple[str, ...] = ()) -> int:
    return registry.add(conn, email, Profile("", language, editions, countries), OPERATOR, source="test")[0]


def test_addresses_are_normalised_and_bad_ones_refused() -> None:
    assert normalise("  Ana.Ruiz@EXAMPLE.Org ") == "ana.ruiz@example.org"
    assert normalise("maría@ejemplo.es") == "maría@ejemplo.es"
    for bad in ("", "no-at-sign", "a@b@c.org", "ana@", "x" * 330 + "@example.org"):
        with pytest.raises(SubscriberError):
            normalise(bad)


def test_profile_checks_language_editions_and_countries(tmp_path: Path) -> None:
    v = vocabulary(tmp_path)
    profile = v.profile("  Ana   Ruiz ", "es", ["weekly-es"], ["México", "el salvador"])
    assert profile == Profile("Ana Ruiz", "es", ("weekly-es",), ("mexico", "el-salvador"))
    with pytest.raises(SubscriberError, match="language 'fr'"):
        v.profile("", "fr", [], [])
    with pytest.raises(SubscriberError, match="'daily-en' is in 'en', not in 'es'"):
        v.profile("", "es", ["daily-en"], [])
    with pytest.raises(SubscriberError, match="'Atlantis' is not a known country"):
        v.profile("", "en", [], ["Atlantis"])


def test_audience_streams_who_wants_the_edition_in_id_order(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        everything = add(conn, "all@example.org")
        this_edition = add(conn, "daily@example.org", editions=("daily-en",))
        add(conn, "weekly@example.org", editions=("weekly-en",))
        add(conn, "spanish@example.org", language="es")
        colombia = add(conn, "colombia@example.org", countries=("colombia",))
        peru = add(conn, "peru@example.org", countries=("peru",))
        add(conn, "left@example.org")
        registry.remove(conn, "left@example.org")
        add(conn, "bounced@example.org")
        record_bounce(conn, "bounced@example.org", "hard", "smtp", "550 no such user")
        ask(conn, "pending@example.org", Profile("", "en", (), ()), OPERATOR)
        # Suppressed without a subscriber row change: the suppression list alone keeps it out.
        sneaky = add(conn, "sneaky@example.org")
        conn.execute(sa.insert(schema.suppressions).values(email="sneaky@example.org", reason="manual",
                                                          created_at=utcnow()))
    with engine.connect() as conn:
        got = [(r.id, r.email) for r in audience(conn, DAILY_EN, ["colombia", "mexico"])]
    assert got == [(everything, "all@example.org"), (this_edition, "daily@example.org"),
                   (colombia, "colombia@example.org")]
    assert sneaky not in [i for i, _ in got]
    with engine.connect() as conn:
        # What a send's confirmation counts, and what a mailing's deliveries are written from.
        assert audience_count(conn, DAILY_EN, ["colombia", "mexico"]) == len(got)
        assert audience_count(conn, DAILY_EN, []) == 2
        plans = [Plan(g, "pending") for g in groups(conn, DAILY_EN)]
        assert sorted(p.group.countries for p in plans) == [(), (), ("colombia",), ("peru",)]
        with planned_rows(conn, DAILY_EN, plans) as rows:
            planned = [(r.subscriber_id, r.email) for r in conn.execute(rows)]
            if conn.dialect.name == "sqlite":
                # Each reader's plan is looked up by its key, not found by reading every plan
                # (a million readers in 850 groups took 25 s instead of 5 that way).
                sql = str(rows.compile(conn, compile_kwargs={"literal_binds": True}))
                steps = " | ".join(r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
                assert "SEARCH audience_plan USING" in steps, steps
    assert planned == [(everything, "all@example.org"), (this_edition, "daily@example.org"),
                       (colombia, "colombia@example.org"), (peru, "peru@example.org")]


def test_hard_bounces_and_complaints_suppress_at_once_soft_after_the_limit(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for email in ("hard@example.org", "angry@example.org", "soft@example.org"):
            add(conn, email)
        assert record_bounce(conn, "hard@example.org", "hard", "postmark", "550 5.1.1 unknown user", 3)
        assert record_bounce(conn, "angry@example.org", "complaint", "sendgrid", None, 3)
        assert not record_bounce(conn, "soft@example.org", "soft", "mailgun", "452 mailbox full", 3)
        assert not record_bounce(conn, "soft@example.org", "soft", "mailgun", "452 mailbox full", 3)
        assert record_bounce(conn, "soft@example.org", "soft", "mailgun", "452 mailbox full", 3)
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(schema.subscribers.c.email, schema.subscribers.c.status)).all())
        reasons = dict(conn.execute(sa.select(schema.suppressions.c.email, schema.suppressions.c.reason)).all())
        kinds = [k for (k,) in conn.execute(sa.select(schema.events.c.kind).order_by(schema.events.c.id))]
    assert statuses == {"hard@example.org": "bounced", "angry@example.org": "complained",
                        "soft@example.org": "bounced"}
    assert reasons == {"hard@example.org": "hard_bounce", "angry@example.org": "complaint",
                       "soft@example.org": "soft_bounce_limit"}
    assert kinds == ["hard_bounce", "complaint", "soft_bounce", "soft_bounce", "soft_bounce"]


def test_suppression_wins_over_an_operator_add(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        add(conn, "ana@example.org")
        suppress(conn, "ana@example.org", "unsubscribed", "one-click")
    with engine.begin() as conn, pytest.raises(SubscriberError, match="suppressed \\(unsubscribed\\)"):
        add(conn, "ana@example.org")
    with engine.connect() as conn:
        assert registry.find(conn, "ana@example.org").status == "unsubscribed"


def ask(conn: sa.Connection, email: str, profile: Profile, consent: registry.Consent) -> tuple[int, str]:
    """A form request as `serve` records it, and the mailer's decision on it: (request id, outcome)."""
    request_id = subscribe_requests.record(conn, email, profile, consent, page_language="en", hours=2)
    row = conn.execute(sa.select(schema.subscribe_requests).where(schema.subscribe_requests.c.id == request_id)).one()
    return request_id, subscribe_requests.decide(conn, row, "address-" + email, 3, utcnow())


def test_confirming_activates_only_a_request_made_after_the_last_unsubscribe(engine: sa.Engine) -> None:
    web = registry.Consent("203.0.113.9", "Firefox", "subscribe-en-abc")
    here = registry.Consent("198.51.100.7", "Safari", None)
    with engine.begin() as conn:
        first, outcome = ask(conn, "bo@example.org", Profile("Bo", "en", (), ("peru",)), web)
        assert outcome == subscribe_requests.MAILED
        done = subscribe_requests.confirm(conn, first, here)
        row = registry.get(conn, done.subscriber_id)
        assert row.status == "active" and row.countries == ["peru"]
        registry.unsubscribe(conn, row.id, web, how="page")
        # The old confirmation link is still within its hours, but it cannot undo the unsubscribe.
        assert subscribe_requests.confirm(conn, first, here) is None
        # A new request by the person themselves, confirmed, brings them back.
        again, outcome = ask(conn, "bo@example.org", Profile("Bo", "en", (), ()), web)
        assert outcome == subscribe_requests.MAILED
        assert registry.get(conn, subscribe_requests.confirm(conn, again, here).subscriber_id).status == "active"
        record = registry.data(conn, row.id)
    assert [c["action"] for c in record["consents"]] == ["subscribe", "confirm", "unsubscribe", "subscribe", "confirm"]
    asked, confirmed = record["consents"][0], record["consents"][1]
    assert (asked["ip"], asked["user_agent"], asked["form_version"]) == ("203.0.113.9", "Firefox", "subscribe-en-abc")
    assert (confirmed["ip"], confirmed["user_agent"]) == ("198.51.100.7", "Safari")
    assert asked["confirmed_at"] is not None
    assert record["suppressed"] is None


def test_erasure_keeps_only_a_hash_and_does_not_ban(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        sid = add(conn, "gone@example.org")
        left = add(conn, "left@example.org")
        registry.unsubscribe(conn, left, OPERATOR, how="page")
        registry.erase(conn, sid)
        registry.erase(conn, left)
    with engine.connect() as conn:
        dump = "\n".join(str(r) for t in (schema.subscribers, schema.consents, schema.suppressions, schema.events)
                         for r in conn.execute(sa.select(t)))
        assert "gone@example.org" not in dump and "left@example.org" not in dump
        reasons = dict(conn.execute(sa.select(schema.suppressions.c.email, schema.suppressions.c.reason)).all())
    # The hash carries the choice the person made (unsubscribed), or just that they were erased.
    assert reasons == {erased_key("gone@example.org"): "erased", erased_key("left@example.org"): "unsubscribed"}
    with engine.begin() as conn:
        with pytest.raises(SubscriberError, match="erased"):
            add(conn, "Gone@Example.org")  # an operator never brings them back
        # The person can: a new double opt-in.
        request_id, outcome = ask(conn, "gone@example.org", Profile("", "en", (), ()), OPERATOR)
        assert outcome == subscribe_requests.MAILED
        back = subscribe_requests.confirm(conn, request_id, OPERATOR)
        new_id = add(conn, "new@example.org")
        assert registry.suppression_reason(conn, "gone@example.org") is None
    assert back.subscriber_id > left and new_id > back.subscriber_id  # erased ids are never reused
