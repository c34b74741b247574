"""Operator accounts, their API tokens and the operations layer's shared rules, through the real CLI and HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from alembic import command

from newsletter import audit, config as config_module, operations, operators
from newsletter.errors import MailingError
from newsletter.operators import ForbiddenError
from newsletter.store import open_store, schema, utcnow
from newsletter.store.db import _alembic_config, create_engine
from tests.support.cli import run_cli, run_json
from tests.support.editions import add_brief, add_subscriber
from tests.support.serve import Served, free_port

PASSWORD = "correct horse battery staple"
SHARED = "shared-operator-token-5a1e-0123456789abcdef"
ENV = {"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdefghijkl"}


def add_operator(config: Path, name: str, role: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    """`newsletter operators add` with the password on standard input, as a script would run it."""
    return subprocess.run([sys.executable, "-m", "newsletter", "--config", str(config), "operators", "add", name,
                           "--role", role], input=password + "\n", capture_output=True, text=True,
                          env={**os.environ, **ENV}, timeout=120)


@pytest.fixture
def config(config_file, sqlite_url: str) -> Path:
    path = config_file(editions=[{"name": "daily-en", "language": "en", "schedule": "0 7 1 1 *",
                                  "timezone": "America/Bogota"}],
                       web={"operator_token_env": "TEST_SHARED_TOKEN"})
    engine = open_store(sqlite_url)
    add_subscriber(engine, "reader@example.net")
    add_brief(engine, "port-raid", seen=utcnow())
    engine.dispose()
    return path


def test_operators_add_list_remove_with_the_password_hashed(config: Path, sqlite_url: str) -> None:
    added = add_operator(config, "ana", "admin")
    assert added.returncode == 0, added.stderr
    assert "operator ana added (admin)" in added.stdout
    assert add_operator(config, "ed", "editor").returncode == 0
    again = add_operator(config, "ana", "editor")
    assert again.returncode != 0 and "exists already" in again.stderr
    short = add_operator(config, "bo", "admin", "short")
    assert short.returncode != 0 and "at least 12" in short.stderr
    bad_role = add_operator(config, "cy", "owner")
    assert bad_role.returncode != 0 and "invalid choice" in bad_role.stderr
    code, listed = run_json("operators", "list", config=config)
    assert code == 0 and [(o["name"], o["role"], o["token"]) for o in listed] == [("ana", "admin", False),
                                                                                  ("ed", "editor", False)]
    engine = open_store(sqlite_url)
    with engine.connect() as conn:
        stored = conn.scalar(sa.select(schema.operators.c.password_hash).where(schema.operators.c.name == "ana"))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert operators.authenticate(engine, "ana", PASSWORD).role == "admin"
    assert operators.authenticate(engine, "ana", PASSWORD + "x") is None
    removed = run_cli("operators", "remove", "ed", config=config)
    assert removed.returncode == 0 and "operator ed removed" in removed.stdout
    missing = run_cli("operators", "remove", "ed", config=config)
    assert missing.returncode != 0 and "no operator 'ed'" in missing.stderr
    code, entries = run_json("status", "--audit", config=config)
    assert code == 0 and [e["action"] for e in entries][:3] == ["operator_remove", "operator_add", "operator_add"]
    assert all(e["channel"] == "cli" and "@" in e["origin"] for e in entries)
    engine.dispose()


def test_repeated_sign_in_failures_lock_the_account(config: Path, sqlite_url: str) -> None:
    assert add_operator(config, "ana", "admin").returncode == 0
    engine = open_store(sqlite_url)
    now = utcnow()
    for _ in range(operators.LOCKOUT_FAILURES - 1):
        assert operators.authenticate(engine, "ana", "wrong password", now) is None
    with pytest.raises(operators.LockedOut):
        operators.authenticate(engine, "ana", "wrong password", now)
    with pytest.raises(operators.LockedOut):  # even the right password waits
        operators.authenticate(engine, "ana", PASSWORD, now + timedelta(minutes=1))
    assert operators.authenticate(engine, "ana", PASSWORD, now + operators.LOCKOUT + timedelta(seconds=1)) is not None
    engine.dispose()


def test_per_operator_api_tokens_beside_the_shared_one(config: Path, sqlite_url: str) -> None:
    assert add_operator(config, "ana", "admin").returncode == 0
    assert add_operator(config, "ed", "editor").returncode == 0
    ana = run_cli("operators", "token", "ana", config=config, check=True).stdout.strip()
    ed = run_cli("operators", "token", "ed", config=config, check=True).stdout.strip()
    assert ana.startswith("nlop_") and ana != ed
    server = Served(config, free_port())  # the shared token's variable is unset: operator tokens alone
    try:
        def post(path: str, token: str) -> httpx.Response:
            return httpx.post(server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60)

        refused = post("/api/editions/daily-en/send", ed)
        assert refused.status_code == 403 and "admin" in refused.json()["error"]
        assert httpx.get(server.url + "/api/status", headers={"Authorization": f"Bearer {ed}"},
                         timeout=10).status_code == 200
        assert post("/api/editions/daily-en/send", "nlop_" + "x" * 43).status_code == 401
        sent = post("/api/editions/daily-en/send", ana)
        assert sent.status_code == 202, sent.text
        run_cli("operators", "remove", "ana", config=config, check=True)
        assert post("/api/editions/daily-en/send", ana).status_code == 401
    finally:
        server.stop()
    code, entries = run_json("status", "--audit", config=config)
    send = next(e for e in entries if e["action"] == "send_now")
    assert (send["operator"], send["channel"], send["origin"]) == ("ana", "api", "127.0.0.1")


def test_the_shared_token_still_works_and_acts_as_admin(config: Path) -> None:
    server = Served(config, free_port(), env={"TEST_SHARED_TOKEN": SHARED})
    try:
        answer = httpx.post(server.url + "/api/editions/daily-en/send", headers={"Authorization": f"Bearer {SHARED}"},
                            timeout=60)
    finally:
        server.stop()
    assert answer.status_code == 202 and answer.json()["mailing"] == "created"


def test_send_now_refuses_a_paused_mailing_the_same_way_for_every_caller(config: Path, sqlite_url: str) -> None:
    loaded = config_module.load(config)
    engine = open_store(sqlite_url)
    cli = audit.cli_actor()
    target = operations.send_now(loaded, engine, "daily-en", cli)
    assert target.created and target.mailing_id is not None
    operations.pause(engine, target.mailing_id, cli)
    with pytest.raises(MailingError, match=f"mailing {target.mailing_id} of daily-en is paused .*resume it first"):
        operations.send_now(loaded, engine, "daily-en", cli)
    proc = run_cli("send", "daily-en", config=config, env=ENV)
    assert proc.returncode != 0 and "is paused" in proc.stderr and "resume it first" in proc.stderr
    editor = audit.Actor("ed", operators.EDITOR, audit.CONSOLE, "127.0.0.1")
    with pytest.raises(ForbiddenError, match="needs the admin role"):
        operations.resume(engine, target.mailing_id, editor)
    resumed = run_json("send", "daily-en", "--resume", config=config, env=ENV)
    assert resumed[0] == 0 and resumed[1]["status"] == "done" and resumed[1]["sent"] == 1
    with engine.connect() as conn:
        slot = conn.scalar(sa.select(schema.mailings.c.slot).where(schema.mailings.c.id == target.mailing_id))
    assert slot.startswith("manual-")
    actions = [e["action"] for e in operations.audit_log(engine)]
    assert actions[:3] == ["resume", "pause", "send_now"]
    engine.dispose()


def test_migration_0005_keeps_the_data_of_0001(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_engine(url)
    command.upgrade(_alembic_config(engine), "0001")
    add_subscriber(engine, "kept@example.org")
    with engine.connect() as conn:
        assert "operators" not in sa.inspect(conn).get_table_names()
    engine.dispose()
    engine = open_store(url)  # upgrades to head
    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        assert conn.scalar(sa.select(schema.subscribers.c.email)) == "kept@example.org"
    assert {"operators", "operator_sessions", "audit_log"} <= names
    with engine.begin() as conn:
        operators.add(conn, "ana", operators.ADMIN, PASSWORD)
        audit.record(conn, audit.cli_actor(), "operator_add", "operator ana")
    assert operators.authenticate(engine, "ana", PASSWORD) is not None
    engine.dispose()
