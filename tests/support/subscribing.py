"""Driving the subscriber pages of a real `newsletter serve` the way a browser does, for the security tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from tests.support.configs import base_config, write_config
from tests.support.inbox import Inbox, text_part
from tests.support.serve import Served, free_port

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def site_config(tmp_path: Path, store_url: str, inbox: Inbox, port: int, **sections: Any) -> Path:
    data = base_config(store_url)
    data["publication"]["public_url"] = f"http://127.0.0.1:{port}"
    data["editions"] = [{"name": "daily-en", "language": "en", "countries": ["colombia", "mexico"]},
                        {"name": "weekly-en", "language": "en"},
                        {"name": "semanal-es", "language": "es", "title": "Semanal"}]
    data["transport"] = {"kind": "smtp", "host": "127.0.0.1", "port": inbox.controller.port}
    data.update(sections)
    return write_config(tmp_path, data)


def serve_site(tmp_path: Path, store_url: str, inbox: Inbox, env: dict[str, str] | None = None,
               **sections: Any) -> Served:
    port = free_port()
    return Served(site_config(tmp_path, store_url, inbox, port, **sections), port, env=env)


def session(site: Served, path: str = "/subscribe", **client: Any) -> tuple[httpx.Client, str]:
    """A client with the CSRF cookie of `path` and the form token that goes with it."""
    browser = httpx.Client(base_url=site.url, follow_redirects=False, **client)
    page = browser.get(path)
    return browser, CSRF.search(page.text).group(1)


def subscribe(browser: httpx.Client, csrf: str, email: str, **fields: Any) -> httpx.Response:
    return browser.post("/subscribe", data={"csrf": csrf, "email": email, "consent": "yes", "language": "en",
                                            **fields})


def link_in(message, path: str) -> str:
    """The path of the first link to `path` (e.g. /confirm/) in an email's text part."""
    return re.search(r"http://127\.0\.0\.1:\d+(" + re.escape(path) + r"\S+)", text_part(message)).group(1)


def press(browser: httpx.Client, path: str, **fields: Any) -> httpx.Response:
    """Open a page that has a form and press its button, as a person does."""
    page = browser.get(path)
    assert page.status_code == 200, page.text
    return browser.post(path, data={"csrf": CSRF.search(page.text).group(1), **fields})
