"""A send worker carries only what sending needs: started by the `newsletter` console script as
operators run it, it loads neither the renderer (Jinja2, MJML, lxml), nor Alembic, nor `requests`,
nor any database code (SQLAlchemy, psycopg: the command's clerks run the ledger for it), and
stays under 60 MB resident with copies of 40 KB:
on SQLite and on PostgreSQL, signing with DKIM or not. The command itself, once it has created
(rendered) the mailing, sends from a fresh image without the renderer: together they stay under
200 MB."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from newsletter.store import open_store
from tests.support.mailcheck import make_dkim_key
from tests.support.sending import HTML, TEXT, make_mailing, send_config, states
from tests.support.smtpd import Behaviour, SMTPServer

ENV = {"NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789abcdefghijkl"}
# Shared libraries of what a worker must not import (pure-Python packages show by their files).
NOT_IN_A_WORKER = ("lxml", "jinja2", "mjml", "alembic", "mako", "requests", "charset_normalizer", "rich", "pygments",
                   "sqlalchemy", "psycopg", "psycopg_binary")
WORKER_RSS_LIMIT = 60 * 2**20
SEND_RSS_LIMIT = 200 * 2**20  # the command and its workers together
# What creating the mailing needs and the command drops before its workers start (it hands over
# to a fresh image of itself that only sends, and that leaves the DKIM keys to the workers).
NOT_IN_THE_SENDING_COMMAND = ("lxml", "mjml", "cryptography")
# A copy of about 40 KB, like the digest's: a worker holds its batch's copies while it sends them.
PARAGRAPH = ("<p>Prosecutors said a network of brokers had moved cocaine through a private port terminal for "
             "years, paying customs officers to wave containers through inspections.</p>\n")
BIG_HTML = HTML.replace("</body>", PARAGRAPH * 150 + "</body>")
BIG_TEXT = TEXT + "\n" + "Prosecutors said a network of brokers had moved cocaine through a port.\n" * 200


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _worker_view(pid: int) -> tuple[int, set[str]]:
    """(VmRSS in bytes, the heavy packages whose shared libraries or files the process has mapped:
    lxml's and charset_normalizer's (requests) show there; the pure-Python ones show in the RSS)."""
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    maps = Path(f"/proc/{pid}/maps").read_text()
    return rss, {name for name in NOT_IN_A_WORKER if f"/{name}/" in maps}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "dkim"])
def test_workers_started_by_the_console_script_stay_under_60_mb(tmp_path: Path, store_url: str, signed: bool) -> None:
    script = Path(sys.executable).parent / "newsletter"
    assert script.exists(), f"the console script {script} is not installed in the venv"
    n = 300
    dkim = None
    if signed:
        key = make_dkim_key(tmp_path)
        dkim = {"selector": key.selector, "domain": key.domain, "private_key_path": str(key.path)}
    # A slow server keeps the workers alive long enough to be looked at.
    with SMTPServer(Behaviour(delay=0.02)) as server:
        config, path = send_config(tmp_path, store_url, kind="smtp", port=server.port, connections=4, dkim=dkim)
        engine = open_store(store_url)
        mailing_id = make_mailing(config, engine, [f"reader{i}@example.net" for i in range(n)], html=BIG_HTML,
                                  text=BIG_TEXT)
        send = subprocess.Popen([str(script), "--config", str(path), "send", "daily-en", "--resume"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV})
        seen: dict[int, tuple[int, set[str]]] = {}
        command_rss, together, command_heavy = 0, 0, set()
        deadline = time.monotonic() + 120
        while send.poll() is None and time.monotonic() < deadline:
            workers = 0
            for pid in _children(send.pid):
                try:
                    # A child between fork and exec is still a copy of the CLI: only a started
                    # worker runs multiprocessing's spawn_main.
                    if b"spawn_main" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                        continue
                    rss, heavy = _worker_view(pid)
                except OSError:
                    continue
                old = seen.get(pid, (0, set()))
                seen[pid] = (max(rss, old[0]), heavy | old[1])
                workers += rss
            if workers:
                try:
                    rss, _ = _worker_view(send.pid)
                    maps = Path(f"/proc/{send.pid}/maps").read_text()
                except OSError:
                    continue
                command_heavy |= {name for name in NOT_IN_THE_SENDING_COMMAND if f"/{name}/" in maps}
                command_rss = max(command_rss, rss)
                together = max(together, rss + workers)
            time.sleep(0.05)
        out, err = send.communicate(timeout=60)
    assert send.returncode == 0, (out, err)
    assert list(states(engine, mailing_id).values()).count("sent") == n
    received = server.recorder.messages
    assert len(received) == n
    assert all(m.startswith(b"DKIM-Signature:") == signed and len(m) > 40_000 for _, m in received)
    engine.dispose()
    assert seen, "no send worker process was seen"
    for pid, (rss, heavy) in seen.items():
        assert not heavy, f"send worker {pid} loaded {sorted(heavy)}"
        assert rss <= WORKER_RSS_LIMIT, f"send worker {pid} peaked at {rss / 2**20:.1f} MB"
    assert command_rss, "the command was not seen while its workers ran"
    assert not command_heavy, f"the command kept {sorted(command_heavy)} while its workers ran"
    assert together <= SEND_RSS_LIMIT, (f"the send peaked at {together / 2**20:.1f} MB together "
                                        f"(the command {command_rss / 2**20:.1f} MB)")


def test_the_worker_module_imports_no_renderer_nor_http_client_nor_database_code() -> None:
    probe = ("import sys, newsletter.send.worker, newsletter.send.smtp; "
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(NOT_IN_A_WORKER)!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
