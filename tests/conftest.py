"""Shared fixtures: stores on a real SQLite file and a real PostgreSQL, servers, configs."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from newsletter.store import open_store
from tests.support.configs import base_config, write_config
from tests.support.httpserver import FixtureServer
from tests.support.inbox import Inbox
from tests.support.wordpress import wordpress  # noqa: F401  (the session fixture, for every module)

ROOT = Path(__file__).resolve().parent.parent
REAL_FIXTURES = ROOT.parent / "shared" / "fixtures" / "real"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(autouse=True)
def signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every deployment has NEWSLETTER_SECRET_KEY: creating a mailing signs its tracked links."""
    if not os.environ.get("NEWSLETTER_SECRET_KEY"):
        monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-0123456789abcdefghijkl")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.sqlite3'}"


def _pg_admin_url() -> str | None:
    url = os.environ.get("NEWSLETTER_TEST_PG_URL")
    if not url:
        if os.environ.get("NEWSLETTER_REQUIRE_PG"):
            pytest.fail("NEWSLETTER_TEST_PG_URL is not set but NEWSLETTER_REQUIRE_PG is")
        pytest.skip("no PostgreSQL: set NEWSLETTER_TEST_PG_URL (scripts/test does)")
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty database on the test PostgreSQL server, dropped afterwards."""
    admin_url = sa.make_url(_pg_admin_url())
    name = "nl_test_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs on both stores."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(store_url: str) -> Iterator[sa.Engine]:
    eng = open_store(store_url)
    yield eng
    eng.dispose()


@pytest.fixture
def store(store_url: str) -> Iterator[sa.Engine]:
    """An opened store on each of SQLite and PostgreSQL (tests may define their own `store`)."""
    eng = open_store(store_url)
    yield eng
    eng.dispose()


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what `serve` mails (confirmations, links)."""
    box = Inbox()
    box.controller.start()
    yield box
    box.controller.stop()


@pytest.fixture
def fixture_server() -> Iterator[FixtureServer]:
    server = FixtureServer().start()
    yield server
    server.stop()


@pytest.fixture
def config_file(tmp_path: Path, sqlite_url: str):
    """Write a config from the minimal base plus the given sections; returns its path."""

    def make(**sections: object) -> Path:
        data = base_config(sqlite_url)
        data.update(sections)
        return write_config(tmp_path, data)

    return make


@pytest.fixture
def real_fixtures() -> Path:
    if not REAL_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures/real is absent")
    return REAL_FIXTURES


BROWSER_WAIT_MS = 60_000


@pytest.fixture(scope="session")
def chromium() -> str:
    path = os.environ.get("NEWSLETTER_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        if os.environ.get("NEWSLETTER_REQUIRE_BROWSER"):
            pytest.fail("no Chromium found but NEWSLETTER_REQUIRE_BROWSER is set")
        pytest.skip("no headless Chromium (apt-get install chromium)")
    # Playwright's assertions wait 5 s by default; a page under the full suite's load on a shared
    # 2-core machine can take longer to answer than that, and a slow page is not a failing one.
    from playwright.sync_api import expect
    expect.set_options(timeout=BROWSER_WAIT_MS)
    return path


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """A folder kept after the run for screenshots and rendered mail (test-artifacts/<test>)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.name)
    folder = ARTIFACTS / safe
    folder.mkdir(parents=True, exist_ok=True)
    return folder
