"""Attack: guessing a weak signing key, operator token or webhook secret offline, and reading a
secret pasted into the config from an error message. Weak secrets stop every command at start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.cli import run_cli
from tests.support.configs import base_config, write_config
from tests.support.serve import free_port

MAKE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
STRONG = "s" * 40


@pytest.mark.parametrize("variable, config, env", [
    ("NEWSLETTER_SECRET_KEY", {}, {"NEWSLETTER_SECRET_KEY": "Zq7"}),
    ("OP_TOKEN", {"web": {"operator_token_env": "OP_TOKEN"}}, {"OP_TOKEN": "hunter2hunter2"}),
    ("MG_KEY", {"webhooks": {"mailgun": {"signing_key_env": "MG_KEY"}}}, {"MG_KEY": "short-key"}),
    ("PM_PASS", {"webhooks": {"postmark": {"username_env": "PM_USER", "password_env": "PM_PASS"}}},
     {"PM_USER": "hooks", "PM_PASS": "letmein"}),
])
def test_a_short_secret_is_refused_with_the_reason_and_a_command(tmp_path: Path, store_url: str, variable: str,
                                                                   config: dict, env: dict) -> None:
    data = base_config(store_url)
    data.update(config)
    proc = run_cli("status", "--json", config=write_config(tmp_path, data), env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"environment variable {variable} holds" in proc.stderr
    assert "at least 32" in proc.stderr and MAKE in proc.stderr
    assert env[variable] not in proc.stderr.replace(variable, "")


def test_a_sendgrid_key_that_is_not_a_public_key_is_refused(tmp_path: Path, store_url: str) -> None:
    data = base_config(store_url)
    data["webhooks"] = {"sendgrid": {"public_key_env": "SG_KEY"}}
    proc = run_cli("status", config=write_config(tmp_path, data), env={"SG_KEY": STRONG})
    assert proc.returncode == 2 and "SG_KEY does not hold a public key" in proc.stderr


def test_a_secret_pasted_into_an_env_key_is_refused_without_echo(tmp_path: Path, store_url: str) -> None:
    pasted = "SG.x9Kq2LmN0pQrStUvWxYz.abcDEF123456ghiJKL789"
    for section in ({"transport": {"kind": "postmark", "api_token_env": pasted}},
                    {"web": {"operator_token_env": "3f9a1c0b7e2d4f6a8b0c1d2e3f4a5b6c"}},
                    {"webhooks": {"mailgun": {"signing_key_env": "key-" + "0123456789abcdef" * 2}}}):
        data = base_config(store_url)
        data.update(section)
        proc = run_cli("status", config=write_config(tmp_path, data))
        value = next(iter(next(iter(section.values())).values()))
        if isinstance(value, dict):
            value = next(iter(value.values()))
        assert proc.returncode == 2, proc.stderr
        assert "looks like a secret" in proc.stderr and value not in proc.stderr


def test_health_is_not_ready_without_the_signing_key(tmp_path: Path, store_url: str) -> None:
    port = free_port()
    config = write_config(tmp_path, base_config(store_url))
    env = {k: v for k, v in os.environ.items() if k != "NEWSLETTER_SECRET_KEY"}
    process = subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(config), "serve",
                                "--host", "127.0.0.1", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, answer = time.monotonic() + 30, None
        while answer is None and time.monotonic() < deadline:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            except httpx.HTTPError:
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 503
        assert answer.json()["status"] == "not ready"
        assert "NEWSLETTER_SECRET_KEY is not set" in answer.json()["signing_key"]
    finally:
        process.terminate()
        process.wait(timeout=20)
