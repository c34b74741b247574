"""The fetcher on its own: deadlines against trickling servers, the size cap, validators, Retry-After."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from newsletter.collect.http import Deferred, Fetcher
from newsletter.errors import SourceError
from tests.support.httpserver import FixtureServer, Reply


def fetcher(**kw) -> Fetcher:
    return Fetcher(**{"timeout": 1.0, "max_bytes": 10_000, "retries": 0, "agent": "newsletter-test", **kw})


def test_a_trickling_body_is_cut_off_at_the_deadline(fixture_server: FixtureServer):
    # One byte every 0.2 s never trips a read timeout of 1 s; the whole-response deadline does.
    fixture_server.routes["/slow"] = Reply("x" * 100, trickle=0.2)
    started = time.monotonic()
    with pytest.raises(SourceError, match="body not received within 1s"):
        fetcher().get(fixture_server.url + "/slow")
    assert time.monotonic() - started < 3


def test_a_declared_oversized_body_is_refused_before_reading(fixture_server: FixtureServer):
    fixture_server.routes["/big"] = Reply("y" * 20_000)
    with pytest.raises(SourceError, match="body of 20,000 bytes is over the 10,000-byte cap"):
        fetcher().get(fixture_server.url + "/big")


def test_validators_are_sent_back_and_a_304_is_not_read(fixture_server: FixtureServer):
    def answer(request):
        if request.headers.get("if-none-match") == '"v1"':
            return Reply(status=304, headers={"ETag": '"v1"'})
        return Reply("<rss/>", headers={"ETag": '"v1"', "Last-Modified": "Thu, 01 Oct 2026 10:00:00 GMT"})

    fixture_server.routes["/feed"] = answer
    first = fetcher()
    assert first.get(fixture_server.url + "/feed").body == b"<rss/>"
    remembered = first.next_validators()
    assert remembered == {fixture_server.url + "/feed": {"etag": '"v1"', "last_modified": "Thu, 01 Oct 2026 10:00:00 GMT"}}
    second = fetcher(validators=remembered)
    response = second.get(fixture_server.url + "/feed")
    assert response.not_modified and response.body == b""
    sent = fixture_server.requests[-1].headers
    assert sent["if-none-match"] == '"v1"' and sent["if-modified-since"] == "Thu, 01 Oct 2026 10:00:00 GMT"
    # Nothing changed: the old validators are kept as they were.
    assert second.next_validators() == remembered


def test_backoff_honours_retry_after_and_caps_it(fixture_server: FixtureServer):
    waits: list[float] = []
    answers = iter([Reply(status=429, headers={"Retry-After": "45"}), Reply(status=502), Reply("ok")])
    fixture_server.routes["/busy"] = lambda request: next(answers)
    response = fetcher(retries=2, sleep=waits.append).get(fixture_server.url + "/busy")
    assert response.body == b"ok"
    # A Retry-After within the budget is waited for; a 502 without one backs off exponentially.
    assert waits == [45.0, 2.0]


def test_retry_after_beyond_the_budget_defers_without_waiting(fixture_server: FixtureServer):
    waits: list[float] = []
    fixture_server.routes["/maintenance"] = Reply("Briefly unavailable for scheduled maintenance.", status=503,
                                                  headers={"Retry-After": "600"})
    before = datetime.now(timezone.utc)
    with pytest.raises(Deferred) as raised:
        fetcher(retries=3, sleep=waits.append).get(fixture_server.url + "/maintenance")
    assert waits == [] and len(fixture_server.requests) == 1
    assert before + timedelta(seconds=595) < raised.value.until < before + timedelta(seconds=610)
    assert str(raised.value).startswith("HTTP 503 Service Unavailable asking us to retry in 600 s")
