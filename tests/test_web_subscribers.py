"""The subscriber pages served by the real `newsletter serve`, used by headless Chromium and by
plain HTTP clients the way mail providers call them, on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from email.message import Message
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import sqlalchemy as sa

from newsletter import tokens
from newsletter.store import open_store, schema, utcnow
from newsletter.subscribers import registry
from newsletter.subscribers.profile import Profile
from tests.support.configs import base_config, write_config
from tests.support.inbox import Inbox
from tests.support.serve import Served, free_port

KEY = b"test-secret-key-0123456789abcdefghijkl"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def site(tmp_path: Path, store_url: str, inbox: Inbox) -> Iterator[Served]:
    port = free_port()
    data = base_config(store_url)
    data["publication"]["public_url"] = f"http://127.0.0.1:{port}"
    data["editions"] = [{"name": "daily-en", "language": "en", "countries": ["colombia", "mexico"]},
                        {"name": "semanal-es", "language": "es", "title": "Semanal"}]
    data["transport"] = {"kind": "smtp", "host": "127.0.0.1", "port": inbox.controller.port}
    data["web"] = {"subscribe_rate_per_hour": 6, "confirm_hours": 2}
    served = Served(write_config(tmp_path, data), port)
    yield served
    served.stop()


@pytest.fixture
def store(store_url: str, site: Served) -> Iterator[sa.Engine]:
    engine = open_store(store_url)
    yield engine
    engine.dispose()


def subscriber(engine: sa.Engine, email_address: str) -> sa.Row | None:
    with engine.connect() as conn:
        return registry.find(conn, email_address)


def suppression(engine: sa.Engine, email_address: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(schema.suppressions.c.reason)
                            .where(schema.suppressions.c.email == email_address)).scalar_one_or_none()


def active(engine: sa.Engine, email_address: str, language: str = "en") -> int:
    with engine.begin() as conn:
        return registry.add(conn, email_address, Profile("", language, (), ()), registry.Consent(), source="test")[0]


def text_part(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text/plain part")


def form_session(site: Served, path: str = "/subscribe") -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=site.url, follow_redirects=False)
    page = client.get(path)
    return client, re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


@pytest.mark.browser
def test_the_whole_journey_in_a_browser(site: Served, store: sa.Engine, inbox: Inbox, chromium: str,
                                        artifacts: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="en-GB")
            page.goto(site.url + "/subscribe")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            page.get_by_label("Email address").fill("Reader@Example.org")
            page.get_by_label("Name (optional)").fill("Rita Reader")
            page.get_by_label("I agree to receive the newsletter").check()
            page.screenshot(path=str(artifacts / "1-subscribe.png"), full_page=True)
            page.get_by_role("button", name="Subscribe").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
            assert subscriber(store, "reader@example.org") is None  # a request, not yet a subscriber

            message = inbox.wait_for("reader@example.org")
            assert message["Subject"] == "Confirm your subscription to Crime Briefs Test"
            link = re.search(r"http://127\.0\.0\.1:\d+/confirm/\S+", text_part(message)).group(0)
            page.goto(link)
            expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your subscription")
            assert subscriber(store, "reader@example.org") is None  # opening the link changes nothing
            page.get_by_role("button", name="Confirm my subscription").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed")
            row = subscriber(store, "reader@example.org")
            assert (row.status, row.name) == ("active", "Rita Reader")
            assert row.confirmed_at is not None

            page.get_by_role("link", name="Choose what you receive").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Your preferences")
            page.get_by_label("daily-en (English)").check()
            page.get_by_label("Colombia").check()
            page.screenshot(path=str(artifacts / "2-preferences.png"), full_page=True)
            page.get_by_role("button", name="Save my preferences").click()
            expect(page.get_by_role("status")).to_have_text("Your preferences are saved.")
            row = subscriber(store, "reader@example.org")
            assert (row.editions, row.countries) == (["daily-en"], ["colombia"])

            page.get_by_role("link", name="Unsubscribe").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe")
            expect(page.get_by_text("reader@example.org")).to_be_visible()
            assert subscriber(store, "reader@example.org").status == "active"  # GET never unsubscribes
            page.get_by_role("button", name="Unsubscribe").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
            page.screenshot(path=str(artifacts / "3-unsubscribed.png"), full_page=True)
            assert subscriber(store, "reader@example.org").status == "unsubscribed"
            assert suppression(store, "reader@example.org") == "unsubscribed"
        finally:
            browser.close()


@pytest.mark.browser
def test_pages_speak_spanish_fit_a_phone_and_show_focus(site: Served, chromium: str, artifacts: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            phone = browser.new_page(viewport={"width": 360, "height": 740}, extra_http_headers={
                "Accept-Language": "es-CO,es;q=0.9,en;q=0.5"})
            phone.goto(site.url + "/subscribe")
            expect(phone.locator("html")).to_have_attribute("lang", "es")
            expect(phone.get_by_role("heading", level=1)).to_have_text("Suscríbase")
            assert phone.evaluate("document.documentElement.scrollWidth") <= 360
            phone.get_by_label("Correo electrónico", exact=True).focus()
            outline = phone.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none"
            button = phone.get_by_role("button", name="Suscribirme").bounding_box()
            assert button["height"] >= 44  # a finger-sized target
            phone.screenshot(path=str(artifacts / "subscribe-es-phone.png"), full_page=True)
            phone.goto(site.url + "/subscribe?lang=en")
            expect(phone.get_by_role("heading", level=1)).to_have_text("Subscribe")
        finally:
            browser.close()


def test_one_click_unsubscribe_exactly_as_gmail_sends_it(site: Served, store: sa.Engine) -> None:
    sid = active(store, "gmail.user@example.org")
    url = f"{site.url}/unsubscribe/{tokens.make(KEY, 'unsubscribe', sid)}"
    response = httpx.post(url, content=b"List-Unsubscribe=One-Click", follow_redirects=False,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    assert "location" not in response.headers
    assert subscriber(store, "gmail.user@example.org").status == "unsubscribed"
    assert suppression(store, "gmail.user@example.org") == "unsubscribed"
    with store.connect() as conn:
        record = registry.data(conn, sid)
    assert record["consents"][-1]["action"] == "unsubscribe"
    assert record["consents"][-1]["detail"] == {"how": "one-click"}
    # A second click (providers retry) is answered the same way.
    again = httpx.post(url, content=b"List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert again.status_code == 200


def test_one_click_unsubscribe_as_multipart(site: Served, store: sa.Engine) -> None:
    sid = active(store, "yahoo.user@example.org")
    boundary = "----ProviderBoundary7MA4YWxkTrZu0gW"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
            f"One-Click\r\n--{boundary}--\r\n").encode()
    response = httpx.post(f"{site.url}/unsubscribe/{tokens.make(KEY, 'unsubscribe', sid)}", content=body,
                          headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 200
    assert subscriber(store, "yahoo.user@example.org").status == "unsubscribed"


def test_a_tampered_or_misused_token_gets_a_400_page_and_changes_nothing(site: Served, store: sa.Engine) -> None:
    sid = active(store, "kept@example.org")
    token = tokens.make(KEY, "unsubscribe", sid)
    tampered = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    forged = tokens.make(b"someone-elses-key", "unsubscribe", sid)
    other_purpose = tokens.make(KEY, "preferences", sid)
    for bad in (tampered, forged, other_purpose, "x", token[:-4]):
        response = httpx.post(f"{site.url}/unsubscribe/{bad}", content=b"List-Unsubscribe=One-Click",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 400, bad
        assert "This link does not work" in response.text
    preferences = tokens.make(KEY, "preferences", sid)
    for bad in (preferences[:-1] + ("A" if preferences[-1] != "A" else "B"), token):
        assert httpx.get(f"{site.url}/preferences/{bad}").status_code == 400
    expired = tokens.make(KEY, "subscribe_request", sid, int(time.time()) - 60)
    response = httpx.get(f"{site.url}/confirm/{expired}")
    assert response.status_code == 400 and "This link has expired" in response.text
    assert subscriber(store, "kept@example.org").status == "active"
    assert suppression(store, "kept@example.org") is None


def test_subscribing_never_reveals_whether_an_address_is_on_the_list(site: Served, store: sa.Engine,
                                                                     inbox: Inbox) -> None:
    active(store, "already@example.org")
    answers = []
    for address in ("already@example.org", "newcomer@example.org"):
        client, csrf = form_session(site)
        response = client.post("/subscribe", data={"csrf": csrf, "email": address, "consent": "yes",
                                                   "language": "en"})
        answers.append((response.status_code, re.sub(r'value="[^"]*"', "", response.text)))
    assert answers[0] == answers[1]
    assert answers[0][0] == 200 and "Check your inbox" in answers[0][1]
    inbox.wait_for("newcomer@example.org")
    time.sleep(0.5)
    assert inbox.sent_to("already@example.org") == 0  # no second confirmation for an active subscriber
    assert subscriber(store, "already@example.org").status == "active"


def test_forms_need_their_csrf_token(site: Served, store: sa.Engine) -> None:
    response = httpx.post(f"{site.url}/subscribe", data={"email": "csrf@example.org", "consent": "yes"})
    assert response.status_code == 403 and "Reload the page" in response.text
    client, csrf = form_session(site)
    stranger, _ = form_session(site)
    response = stranger.post("/subscribe", data={"csrf": csrf, "email": "csrf@example.org", "consent": "yes"})
    assert response.status_code == 403  # a token from someone else's session
    assert subscriber(store, "csrf@example.org") is None
    response = client.post("/subscribe", data={"csrf": csrf, "email": "csrf@example.org", "consent": "yes"})
    assert response.status_code == 200
    with store.connect() as conn:
        requested = conn.execute(sa.select(schema.subscribe_requests.c.email)).scalars().all()
    assert requested == ["csrf@example.org"]  # only the request with its token was taken


def test_subscribe_is_rate_limited_per_client(site: Served) -> None:
    client, csrf = form_session(site)
    codes = [client.post("/subscribe", data={"csrf": csrf, "email": f"r{i}@example.org", "consent": "yes"}).status_code
             for i in range(7)]
    assert codes == [200] * 6 + [429]
    page = client.post("/subscribe", data={"csrf": csrf, "email": "late@example.org", "consent": "yes"})
    assert page.status_code == 429 and "Too many subscriptions" in page.text


def test_bad_input_is_refused_with_a_clear_message(site: Served, store: sa.Engine) -> None:
    client, csrf = form_session(site)
    response = client.post("/subscribe", data={"csrf": csrf, "email": "not an address", "consent": "yes"})
    assert response.status_code == 400 and "Enter a valid email address" in response.text
    # Mail cannot reach an address with accents before the @ (no SMTPUTF8): said now, not never sent.
    response = client.post("/subscribe", data={"csrf": csrf, "email": "josé@example.org", "consent": "yes"})
    assert response.status_code == 400 and "accents or other special letters before the @" in response.text
    assert subscriber(store, "josé@example.org") is None
    response = client.post("/subscribe", data={"csrf": csrf, "email": "ok@example.org"})
    assert response.status_code == 400 and "Tick the box" in response.text
    response = client.post("/subscribe", content=b"x" * (65 * 1024),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413 and "larger than this page accepts" in response.text
    response = client.post("/subscribe", content=b"--nope\r\ngarbage",
                           headers={"Content-Type": "multipart/form-data; boundary=other"})
    assert response.status_code == 400 and "The form could not be read" in response.text
    response = client.post("/subscribe", json={"email": "json@example.org"})
    assert response.status_code == 400
    assert subscriber(store, "ok@example.org") is None


def test_security_headers_on_every_page(site: Served) -> None:
    response = httpx.get(f"{site.url}/subscribe")
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src" not in csp and "unsafe-inline" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "<script" not in response.text and " style=" not in response.text
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_a_subscriber_downloads_then_erases_their_data(site: Served, store: sa.Engine, inbox: Inbox) -> None:
    sid = active(store, "private@example.org")
    preferences = f"/preferences/{tokens.make(KEY, 'preferences', sid)}"
    client, csrf = form_session(site, preferences)
    asked = client.post(preferences + "/data", data={"csrf": csrf})
    assert asked.status_code == 200 and "Check your inbox" in asked.text
    path = re.search(r"http://127\.0\.0\.1:\d+(/data/\S+)", text_part(inbox.wait_for("private@example.org"))).group(1)
    page = client.get(path)
    assert page.status_code == 200 and "Erase my data" in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    download = client.post(path, data={"csrf": csrf, "action": "download"})
    assert download.status_code == 200
    assert "attachment" in download.headers["content-disposition"]
    assert download.json()["email"] == "private@example.org"
    assert download.json()["consents"][0]["action"] == "add"
    # The link worked once: erasing needs a new one.
    assert client.post(path, data={"csrf": csrf, "action": "erase"}).status_code == 400
    client.post(preferences + "/data", data={"csrf": csrf})
    deadline = time.monotonic() + 20
    while inbox.sent_to("private@example.org") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    second = [m for m in inbox.messages if m["To"] == "private@example.org"][-1]
    path = re.search(r"http://127\.0\.0\.1:\d+(/data/\S+)", text_part(second)).group(1)
    erased = client.post(path, data={"csrf": csrf, "action": "erase"})
    assert erased.status_code == 200 and "Your data is erased" in erased.text
    assert subscriber(store, "private@example.org") is None
    with store.connect() as conn:
        assert all("private@example.org" not in str(r) for r in conn.execute(sa.select(schema.suppressions)))


def test_the_archive_keeps_its_own_policy_so_the_digest_keeps_its_styles(site: Served, store: sa.Engine) -> None:
    with store.begin() as conn:
        mailing_id = conn.execute(sa.insert(schema.mailings).values(
            edition="daily-en", slot="manual-test", language="en", status="done", subject="Today",
            preheader="", brief_ids=[], cutoff=utcnow(), created_at=utcnow(),
            html='<html><body><p style="color:#0b4f8a">Today in crime news</p></body></html>', text="",
        ).returning(schema.mailings.c.id)).scalar_one()
    response = httpx.get(f"{site.url}/archive/{mailing_id}")
    assert response.status_code == 200
    [policy] = response.headers.get_list("content-security-policy")
    assert "style-src 'unsafe-inline'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'; style-src 'self'" in httpx.get(f"{site.url}/subscribe").headers[
        "content-security-policy"]


def test_webhooks_are_not_there_when_not_configured(site: Served, store: sa.Engine) -> None:
    sid = active(store, "someone@example.org")
    event = {"RecordType": "Bounce", "ID": 1, "Type": "HardBounce", "Email": "someone@example.org"}
    response = httpx.post(f"{site.url}/webhooks/postmark", json=event, auth=("any", "thing"))
    assert response.status_code == 404
    with store.connect() as conn:
        assert registry.get(conn, sid).status == "active"


def test_preferences_in_another_language_are_refused_in_the_page_language(site: Served, store: sa.Engine) -> None:
    sid = active(store, "lectora@example.org", language="es")
    path = f"/preferences/{tokens.make(KEY, 'preferences', sid)}"
    client, csrf = form_session(site, path)
    response = client.post(path, data={"csrf": csrf, "name": "Lectora", "language": "es", "editions": "daily-en"})
    assert response.status_code == 400
    assert 'lang="es"' in response.text and "No se guardó nada" in response.text
    row = subscriber(store, "lectora@example.org")
    assert (row.name, row.editions) == ("", [])
    response = client.post(path, data={"csrf": csrf, "name": "Lectora", "language": "es", "editions": "semanal-es",
                                       "countries": ["mexico", "colombia"]})
    assert response.status_code == 200 and "Sus preferencias están guardadas." in response.text
    row = subscriber(store, "lectora@example.org")
    assert (row.name, row.editions, row.countries) == ("Lectora", ["semanal-es"], ["mexico", "colombia"])


def test_the_confirmation_goes_through_an_http_provider_when_that_is_the_transport(
        tmp_path: Path, sqlite_url: str, fixture_server) -> None:
    from tests.support.httpserver import Reply

    fixture_server.routes["/email/batch"] = Reply(json.dumps([{"ErrorCode": 0, "MessageID": "pm-1"}]),
                                                  content_type="application/json")
    port = free_port()
    data = base_config(sqlite_url)
    data["publication"]["public_url"] = f"http://127.0.0.1:{port}"
    data["transport"] = {"kind": "postmark", "api_url": fixture_server.url, "api_token_env": "TEST_POSTMARK_TOKEN"}
    served = Served(write_config(tmp_path, data), port, env={"TEST_POSTMARK_TOKEN": "pm-token"})
    try:
        client, csrf = form_session(served)
        response = client.post("/subscribe", data={"csrf": csrf, "email": "api.reader@example.org", "consent": "yes"})
        assert response.status_code == 200
        deadline = time.monotonic() + 20
        while not fixture_server.requests_to("/email/batch") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        served.stop()
    [request] = fixture_server.requests_to("/email/batch")
    assert request.headers["x-postmark-server-token"] == "pm-token"
    [message] = json.loads(request.body)
    assert message["To"] == "api.reader@example.org"
    assert message["Subject"] == "Confirm your subscription to Crime Briefs Test"
    assert f"http://127.0.0.1:{port}/confirm/" in message["TextBody"]
