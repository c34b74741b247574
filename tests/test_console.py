"""The operator console of the real `newsletter serve`: in Debian's Chromium through Playwright, and over HTTP.

The browser walks the whole flow an editor and an admin follow (sign in, overview, the next
mailing at 600 and 375 px, a test copy received by aiosmtpd, send now with its confirmation,
pause, resume, sign out), keeps screenshots in test-artifacts/, and runs axe-core on every
console page. The HTTP tests check what keeps the console safe: off without accounts, CSRF,
cookie flags, lockout, roles and headers.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from newsletter.store import open_store, utcnow
from tests.support.axe import serious_violations
from tests.support.browser import ARGS, overflow
from tests.support.cli import run_json
from tests.support.configs import base_config, write_config
from tests.support.editions import add_brief, add_subscriber
from tests.support.serve import Served, free_port
from tests.support.smtpd import SMTPServer

PASSWORD = "correct horse battery staple"
KEY = "test-secret-key-0123456789abcdefghijkl"  # what tests.support.serve gives `serve`
READERS = [f"reader-{i:02d}@example.net" for i in range(24)]
EDITOR_ADDRESS = "editor@example.org"


def add_operator(config: Path, name: str, role: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "newsletter", "--config", str(config), "operators", "add", name,
                           "--role", role], input=PASSWORD + "\n", capture_output=True, text=True,
                          env={**os.environ, "NEWSLETTER_SECRET_KEY": KEY}, timeout=120)
    assert proc.returncode == 0, proc.stderr


def write(folder: Path, sqlite_url: str, smtp_port: int) -> Path:
    data = base_config(sqlite_url)
    # A source that has not been collected yet: the overview lists it all the same.
    data["sources"] = [{"name": "crime-briefs-en", "kind": "wordpress", "url": "https://briefs.example.org",
                        "language": "en"}]
    data["editions"] = [{"name": "daily-en", "language": "en", "title": "Crime Briefs Daily",
                         "schedule": "0 7 * * *", "timezone": "America/Bogota"}]
    # The test client stands in for a TLS-terminating proxy on loopback.
    data["web"] = {"trusted_proxies": ["127.0.0.1"]}
    # Slow enough (3 messages a second) that a person can press pause while it sends.
    data["transport"] = {"kind": "smtp", "host": "127.0.0.1", "port": smtp_port, "connections": 1,
                         "rate_per_second": 3.0, "burst": 1, "batch_size": 4}
    return write_config(folder, data)


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


@pytest.fixture
def store(tmp_path: Path, sqlite_url: str, smtp: SMTPServer) -> Path:
    config = write(tmp_path, sqlite_url, smtp.port)
    engine = open_store(sqlite_url)
    for address in READERS:
        add_subscriber(engine, address)
    add_brief(engine, "port-raid", seen=utcnow())
    add_brief(engine, "border-cartel", seen=utcnow())
    engine.dispose()
    return config


@pytest.fixture
def served(store: Path) -> Iterator[Served]:
    add_operator(store, "ana", "admin")
    add_operator(store, "ed", "editor")
    server = Served(store, free_port())
    yield server
    server.stop()


def received(smtp: SMTPServer) -> collections.Counter:
    return collections.Counter(recipient for recipient, _ in smtp.recorder.messages)


# -- the browser flow ------------------------------------------------------------------------------


@pytest.mark.browser
def test_sign_in_preview_test_send_now_pause_resume_sign_out(served: Served, smtp: SMTPServer, chromium: str,
                                                             artifacts: Path, store: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    checked: dict[str, list] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(60_000)
        page = context.new_page()

        def check(name: str, url: str) -> None:
            """axe-core at 375 px on the page as the signed-in browser sees it; nothing wider than the phone."""
            # axe is injected as a script, which the console's own policy forbids: this copy of the
            # session reads the pages with the policy bypassed, and changes nothing.
            reader = browser.new_context(viewport={"width": 375, "height": 800}, bypass_csp=True,
                                         storage_state=context.storage_state())
            view = reader.new_page()
            view.goto(served.url + url)
            view.wait_for_load_state("networkidle")
            checked[name] = [(v["id"], v["help"]) for v in serious_violations(view)]
            assert overflow(view) == 0, f"{name} is wider than 375 px"
            view.screenshot(path=str(artifacts / f"{name}-375.png"), full_page=True)
            reader.close()

        # Signed out: every console page leads to the sign-in form.
        page.goto(served.url + "/console/editions/daily-en")
        assert page.url.endswith("/console/login")
        check("login", "/console/login")
        page.fill("#name", "ana")
        page.fill("#password", "not the password")
        page.click("button[type=submit]")
        expect(page.locator("[role=alert]")).to_contain_text("Wrong name or password")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(served.url + "/console/")

        # Overview: sources, editions with their schedule in their zone, briefs waiting.
        card = page.locator(".card", has_text="daily-en")
        expect(card).to_contain_text("America/Bogota")
        expect(card.locator("dd").nth(2)).to_have_text(re.compile(r"\d{4}-\d\d-\d\d 07:00 America/Bogota"))
        expect(card.locator("dd").nth(3)).to_have_text("2")
        expect(page.locator("tr", has_text="crime-briefs-en")).to_contain_text("never")
        page.screenshot(path=str(artifacts / "overview.png"), full_page=True)
        check("overview", "/console/")
        check("overview-es", "/console/?lang=es")

        # The next mailing as a reader gets it, in a sandboxed frame at both widths.
        page.click("text=daily-en")
        page.wait_for_url("**/console/editions/daily-en")
        frames = page.locator("iframe")
        expect(frames).to_have_count(2)
        for i, width in enumerate((600, 375)):
            frame = frames.nth(i)
            assert frame.get_attribute("sandbox") == "" and frame.get_attribute("width") == str(width)
            assert round(frame.bounding_box()["width"]) == width + 2  # plus its 1 px border
            body = page.frame_locator(f"iframe[data-width='{width}']").locator("body")
            expect(body).to_contain_text("Brief port-raid")
            expect(body).to_contain_text("Brief border-cartel")
        subject = page.locator("#subject").inner_text()
        assert subject and "Brief" in page.locator("#text-part").inner_text()
        expect(page.locator("#carried li")).to_have_count(2)
        page.screenshot(path=str(artifacts / "edition-600.png"), full_page=True)
        page.set_viewport_size({"width": 375, "height": 900})
        page.screenshot(path=str(artifacts / "edition-375.png"), full_page=True)
        assert overflow(page) == 0
        page.set_viewport_size({"width": 1280, "height": 900})
        check("edition", "/console/editions/daily-en")

        # A test copy, received by the SMTP server; the ledger is untouched.
        page.fill("#email", EDITOR_ADDRESS)
        page.click("text=Send a test >> nth=-1")
        expect(page.locator("[role=status]")).to_contain_text(f"A test copy was sent to {EDITOR_ADDRESS}")
        assert received(smtp) == {EDITOR_ADDRESS: 1}
        test_copy = smtp.recorder.parsed(EDITOR_ADDRESS)
        assert test_copy["Subject"] == subject

        # Send now: first how many and which briefs, then the confirmation.
        # The link sits below the two preview frames: once the page (frames included) has loaded,
        # scroll to it first. Clicked in one go while the frames still loaded, Chromium's click
        # sometimes reached no element at all (no request was made), on a link that works.
        page.wait_for_load_state("load")
        send_now = page.locator("a.button:has-text('Send now')")
        send_now.scroll_into_view_if_needed()
        send_now.click()
        expect(page.locator("#plan")).to_contain_text(f"{len(READERS)} subscriber(s)")
        expect(page.locator("#plan-briefs li")).to_have_count(2)
        check("confirm", "/console/editions/daily-en/send")
        assert received(smtp) == {EDITOR_ADDRESS: 1}  # nothing went out before confirming
        page.click(f"text=Confirm: send to {len(READERS)} subscriber(s)")
        page.wait_for_url(re.compile(r".*/console/mailings/\d+\?.*"))
        mailing_url = page.url.split("?")[0]
        expect(page.locator("#status")).to_have_text("sending")

        # Pause while it sends, then resume; everyone gets exactly one copy.
        page.click("button:has-text('Pause')")
        expect(page.locator("[role=status]")).to_contain_text("is paused")
        expect(page.locator("#status")).to_have_text("paused")
        time.sleep(2)  # a batch in flight when the pause came is recorded, then nothing more leaves
        paused_at = sum(received(smtp).values()) - 1
        assert paused_at < len(READERS)
        page.goto(served.url + "/console/")
        expect(page.locator("#live")).to_contain_text("paused")
        page.screenshot(path=str(artifacts / "overview-paused.png"), full_page=True)
        page.goto(mailing_url)
        check("mailing", mailing_url.removeprefix(served.url))
        page.click("button:has-text('Resume')")
        expect(page.locator("[role=status]")).to_contain_text("is sending again")
        deadline = time.monotonic() + 120
        while page.locator("#status").inner_text() != "done" and time.monotonic() < deadline:
            time.sleep(1)
            page.reload()
        expect(page.locator("#status")).to_have_text("done")
        expect(page.locator("td[data-state=sent]")).to_have_text(str(len(READERS)))
        # The report's figures and charts, as `newsletter report` gives them: no clicks yet.
        expect(page.locator("#briefs tbody tr")).to_have_count(2)
        expect(page.locator("#briefs tbody tr").first).to_contain_text(str(len(READERS)))
        page.wait_for_function("document.querySelector('img.chart').complete")
        assert page.evaluate("document.querySelector('img.chart').naturalWidth") > 0
        page.screenshot(path=str(artifacts / "mailing-done.png"), full_page=True)
        assert received(smtp) == {EDITOR_ADDRESS: 1, **{r: 1 for r in READERS}}

        # Subscribers and the audit log.
        page.goto(served.url + "/console/subscribers?q=reader-03")
        page.click("text=reader-03@example.net")
        expect(page.locator("#status")).to_have_text("active")
        check("subscribers", "/console/subscribers?q=reader-0")
        check("subscriber", page.url.removeprefix(served.url))
        page.goto(served.url + "/console/audit")
        for action in ("sign_in", "test_send", "send_now", "pause", "resume"):
            expect(page.locator("#audit")).to_contain_text(action)
        check("audit", "/console/audit")

        # Sign out: the session is over.
        page.click("button:has-text('Sign out')")
        page.wait_for_url(served.url + "/console/login")
        page.goto(served.url + "/console/audit")
        assert page.url.endswith("/console/login")
        browser.close()
    assert {name: found for name, found in checked.items() if found} == {}
    code, entries = run_json("status", "--audit", config=store)
    who = {(e["operator"], e["channel"], e["origin"], e["action"]) for e in entries}
    for action in ("sign_in", "test_send", "send_now", "pause", "resume", "sign_out"):
        assert ("ana", "console", "127.0.0.1", action) in who
    assert ("ana", "console", "127.0.0.1", "sign_in_failed") in who


# -- what keeps it safe, over HTTP -----------------------------------------------------------------


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(client: httpx.Client, name: str, password: str = PASSWORD, **headers: str) -> httpx.Response:
    form = client.get("/console/login", headers=headers)
    return client.post("/console/login", data={"csrf": csrf_of(form.text), "name": name, "password": password},
                       headers=headers)


def test_the_console_is_off_until_an_operator_exists(store: Path) -> None:
    server = Served(store, free_port())
    try:
        for path in ("/console/", "/console/login"):
            answer = httpx.get(server.url + path, timeout=30)
            assert answer.status_code == 404 and "newsletter operators add" in answer.text
        assert httpx.post(server.url + "/console/login", data={"name": "x", "password": "y"},
                          timeout=30).status_code == 404
    finally:
        server.stop()


def test_sign_in_needs_csrf_sets_a_strict_cookie_and_locks_after_failures(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        no_csrf = client.post("/console/login", data={"name": "ana", "password": PASSWORD})
        assert no_csrf.status_code == 403 and "nl_console" not in no_csrf.headers.get("set-cookie", "")
        page = client.get("/console/login")
        assert "content-security-policy" in page.headers and page.headers["x-frame-options"] == "DENY"
        signed = sign_in(client, "ana")
        assert signed.status_code == 303 and signed.headers["location"] == "/console/"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # plain HTTP here; behind HTTPS it is Secure (below)
        overview = client.get("/console/")
        assert overview.status_code == 200 and "Signed in as ana (admin)" in overview.text
        assert "frame-ancestors 'none'" in overview.headers["content-security-policy"]
    with httpx.Client(base_url=served.url, timeout=30) as client:
        https = sign_in(client, "ana", **{"X-Forwarded-Proto": "https"})
        assert "Secure" in https.headers["set-cookie"]
    with httpx.Client(base_url=served.url, timeout=30) as client:
        for _ in range(4):
            assert sign_in(client, "ed", "wrong").status_code == 401
        locked = sign_in(client, "ed", "wrong")
        assert locked.status_code == 429 and "locked" in locked.text
        assert sign_in(client, "ed").status_code == 429


def test_state_changing_forms_need_the_session_csrf_and_the_role(served: Served, smtp: SMTPServer) -> None:
    with httpx.Client(base_url=served.url, timeout=60) as admin, httpx.Client(base_url=served.url, timeout=60) as editor:
        sign_in(admin, "ana")
        sign_in(editor, "ed")
        forged = admin.post("/console/editions/daily-en/send", data={"confirm": "new", "csrf": "guess"})
        assert forged.status_code == 403
        assert admin.post("/console/editions/daily-en/send", data={"confirm": "new"}).status_code == 403
        assert received(smtp) == {}
        page = editor.get("/console/editions/daily-en")
        assert page.status_code == 200 and "Send now" not in page.text
        frame = editor.get("/console/editions/daily-en/frame")
        policy = frame.headers["content-security-policy"]
        assert "sandbox" in policy and "script-src" not in policy and "frame-ancestors 'self'" in policy
        assert "Brief port-raid" in frame.text
        token = csrf_of(page.text)
        refused = editor.post("/console/editions/daily-en/send", data={"confirm": "new", "csrf": token})
        assert refused.status_code == 403 and "role" in refused.text
        assert editor.get("/console/subscribers?q=reader").status_code == 403
        bad = editor.post("/console/editions/daily-en/test", data={"email": "editor@@example", "csrf": token})
        assert bad.status_code == 409 and "email: " in bad.text
        sent = editor.post("/console/editions/daily-en/test", data={"email": EDITOR_ADDRESS, "csrf": token})
        assert sent.status_code == 303 and received(smtp) == {EDITOR_ADDRESS: 1}
        out = editor.post("/console/logout", data={"csrf": token})
        assert out.status_code == 303
        assert editor.get("/console/").headers["location"] == "/console/login"
        export = admin.get("/console/subscribers/export.csv")
        assert export.status_code == 200 and export.text.count("@example.net") == len(READERS)
