"""Attack: subscriber and server text that drives the operator's terminal. Every command prints
names, subjects and errors without reading Rich markup and without control characters, on a
real terminal (a pty) as in a pipe, and `--json` escapes them."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.store import open_store, schema, utcnow
from newsletter.subscribers import registry
from newsletter.subscribers.profile import Profile
from tests.support.cli import run_cli
from tests.support.configs import base_config, write_config

MARKUP = "[/bold] [link=http://evil.example/]Click me[/link]"
CONTROLS = "\x1b]8;;http://evil.example/\x07\x1b[2J\x9b31m\u202e"
NAME = "Eve " + MARKUP + CONTROLS
# What the hostile text carries; Rich's own styling (ESC [ ... m) stays allowed on a terminal.
UNSAFE = ("\x1b]", "\x1b[2J", "\x07", "\x9b", "\u202e")


def on_a_terminal(*args: str, config: Path) -> tuple[int, str]:
    """Run the real CLI with stdout and stderr on a pseudo-terminal, as an operator sees it."""
    parent, child = pty.openpty()
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdefghijkl", "COLUMNS": "400",
           "TERM": "xterm-256color"}
    process = subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(config), *args],
                               stdin=subprocess.DEVNULL, stdout=child, stderr=child, env=env)
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(parent, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(parent)
    return process.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def setup(tmp_path: Path, store_url: str) -> Path:
    config = write_config(tmp_path, {**base_config(store_url), "editions": [{"name": "daily-en", "language": "en"}]})
    engine = open_store(store_url)
    with engine.begin() as conn:
        sid = registry.add(conn, "eve@example.org", Profile("", "en", (), ()), registry.Consent(), source="test")[0]
        # Stored as older versions let it through; the pages now drop control characters from names.
        conn.execute(sa.update(schema.subscribers).where(schema.subscribers.c.id == sid).values(name=NAME))
        conn.execute(sa.insert(schema.mailings).values(
            edition="daily-en", slot="manual-1", language="en", status="paused", subject=NAME, preheader="",
            paused_reason="relay said: " + MARKUP + CONTROLS, brief_ids=[], cutoff=utcnow(), created_at=utcnow()))
    engine.dispose()
    return config


def assert_safe(output: str) -> None:
    for character in UNSAFE:
        assert character not in output, repr(output)


def test_every_command_prints_subscriber_text_inert(tmp_path: Path, store_url: str) -> None:
    config = setup(tmp_path, store_url)
    code, shown = on_a_terminal("subscribers", "show", "eve@example.org", config=config)
    assert code == 0, shown
    assert_safe(shown)
    assert MARKUP in shown  # shown as typed, not obeyed (and no crash on the stray [/bold])
    code, exported = on_a_terminal("subscribers", "export", config=config)
    assert code == 0 and "eve@example.org" in exported
    assert_safe(exported)
    code, listed = on_a_terminal("mailings", "list", config=config)
    assert code == 0, listed
    assert_safe(listed)
    assert "Click me[/link]" in listed

    # For machines: every character kept, the dangerous ones escaped.
    proc = run_cli("subscribers", "show", "eve@example.org", "--json", config=config, check=True)
    assert_safe(proc.stdout)
    assert "\x1b" not in proc.stdout
    assert json.loads(proc.stdout)["name"] == NAME
    proc = run_cli("mailings", "list", "--json", config=config, check=True)
    assert_safe(proc.stdout)
    assert json.loads(proc.stdout)[0]["paused_reason"].endswith(CONTROLS)
    proc = run_cli("subscribers", "export", "--json", config=config, check=True)
    assert_safe(proc.stdout)
    assert json.loads(proc.stdout)[0]["name"] == NAME


def test_errors_quoting_hostile_input_are_inert(tmp_path: Path, store_url: str) -> None:
    config = setup(tmp_path, store_url)
    hostile = tmp_path / "list.csv"
    hostile.write_text("email,status\n" + "eve\x1b[2J" + MARKUP + "@x,active\nok@example.org,\x07gone\n",
                       encoding="utf-8")
    code, output = on_a_terminal("subscribers", "import", str(hostile), config=config)
    assert code == 1
    assert_safe(output)
    assert output.count("newsletter: error:") == 2


def test_log_lines_carry_no_terminal_controls(capsys: pytest.CaptureFixture[str]) -> None:
    """A title or server answer quoted in a log line cannot drive the operator's terminal."""
    import logging

    from newsletter.logs import setup_logging

    hostile = "Title\x1b]8;;https://evil.example\x07click\x1b[2J\u202e"
    for json_lines in (False, True):
        setup_logging(json_lines=json_lines)
        logging.getLogger("newsletter.test").warning("source failed: %s", hostile, extra={"detail": hostile})
        err = capsys.readouterr().err
        assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err, err
        assert "Title" in err and "click" in err
    logging.getLogger().handlers.clear()
