"""Public pages benchmark: requests per second `newsletter serve` answers for `/` and `/archive/`.

    .venv/bin/python bench/pages.py [--requests 5000] [--seconds 20] [--concurrency 8] [--runs 3]
                                    [--paths /,/archive/]

Builds a store with the sample publication (bench/sample.py: 400 briefs, 120 past mailings of
daily-en with 15 briefs each), starts the real `newsletter serve` (one uvicorn process) on
127.0.0.1 and, for each path, runs ApacheBench (`ab`, Debian's apache2-utils) `--runs` times
with keep-alive, each run bounded by `--requests` and `--seconds`. Before each run it prints
the machine's load average, since other work on the machine takes its share of the cores.
Every step stops by itself; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import sample  # noqa: E402
from newsletter import briefs  # noqa: E402
from newsletter.config import Config  # noqa: E402
from newsletter.digest import render_mailing  # noqa: E402
from newsletter.store import open_store, schema  # noqa: E402

PARAGRAPH = ("Authorities in {place} seized {n} tonnes of cocaine hidden in a shipment bound for Europe, "
             "the largest haul reported this year, according to the attorney general's office.")
BRIEFS = 400
MAILINGS = 120
PER_MAILING = 15
EDITION = """schedule = "0 7 * * mon-fri"
timezone = "America/Bogota"
"""


def build_store(config: Config) -> None:
    engine = open_store(config.store.url)
    edition = config.editions[0]
    with engine.begin() as conn:
        ids = [briefs.upsert(conn, replace(sample.brief(i, PARAGRAPH, 3), id=None),
                             site_url=config.publication.site_url)[1] for i in range(1, BRIEFS + 1)]
        for n in range(MAILINGS):
            sent = sample.CREATED - timedelta(days=MAILINGS - n)
            chosen = [ids[(n * PER_MAILING + k) % len(ids)] for k in range(PER_MAILING)]
            mailing_id = conn.execute(schema.mailings.insert().values(
                edition=edition.name, slot=sent.isoformat(), language=edition.language, status="done", subject="",
                preheader="", brief_ids=chosen, cutoff=sent, created_at=sent, started_at=sent, finished_at=sent,
            )).inserted_primary_key[0]
            rendered = render_mailing(config, edition, briefs.by_ids(conn, chosen), mailing_id=mailing_id,
                                      created_at=sent)
            conn.execute(schema.mailings.update().where(schema.mailings.c.id == mailing_id).values(
                subject=rendered.subject, html=rendered.html, text=rendered.text, content_hash=rendered.content_hash))
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"newsletter serve exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"newsletter serve did not answer within 60 s:\n{log.read_text()}")


def run_ab(url: str, requests: int, seconds: int, concurrency: int) -> tuple[float, int, int]:
    """(requests per second, complete requests, failed or non-2xx requests) of one bounded ab run."""
    # -t before -n: ab's -t implies -n 50000, and the -n given after it wins.
    proc = subprocess.run(
        ["ab", "-q", "-k", "-t", str(seconds), "-n", str(requests), "-c", str(concurrency),
         "-H", "Accept-Language: en", url],
        capture_output=True, text=True, timeout=seconds + 60,
    )
    if proc.returncode != 0:
        raise SystemExit(f"ab failed:\n{proc.stdout}{proc.stderr}")
    rate = float(re.search(r"Requests per second:\s+([\d.]+)", proc.stdout).group(1))
    complete = int(re.search(r"Complete requests:\s+(\d+)", proc.stdout).group(1))
    failed = int(re.search(r"Failed requests:\s+(\d+)", proc.stdout).group(1))
    non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", proc.stdout)
    return rate, complete, failed + (int(non_2xx.group(1)) if non_2xx else 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="requests per run at most")
    parser.add_argument("--seconds", type=int, default=20, help="seconds per run at most")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3, help="runs per path")
    parser.add_argument("--paths", default="/,/archive/")
    args = parser.parse_args()
    if shutil.which("ab") is None:
        raise SystemExit("ab is not installed: apt-get install apache2-utils")
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as folder:
        config = sample.write_config(Path(folder) / "config.toml", edition=EDITION)
        started = time.monotonic()
        build_store(config)
        print(f"store: {BRIEFS} briefs, {MAILINGS} mailings of {PER_MAILING} briefs "
              f"({time.monotonic() - started:.1f} s to build)")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(folder) / "serve.log"
        env = {**os.environ, "NEWSLETTER_SECRET_KEY": "bench-secret-key-0123456789abcdef"}
        with open(log, "wb") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "newsletter", "--config", str(config.path), "serve", "--host", "127.0.0.1",
                 "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                wait_until_up(url, server, log)
                for path in args.paths.split(","):
                    with urllib.request.urlopen(url + path, timeout=30) as response:  # renders it once
                        size = len(response.read())
                    print(f"\n{path} ({size} bytes): ab -k -c {args.concurrency}, at most {args.requests} requests "
                          f"or {args.seconds} s a run")
                    rates = []
                    for run in range(1, args.runs + 1):
                        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
                        rate, complete, bad = run_ab(url + path, args.requests, args.seconds, args.concurrency)
                        rates.append(rate)
                        print(f"  run {run}: {rate:8.1f} req/s  ({complete} requests, {bad} failed or not 2xx; "
                              f"load average before: {load})")
                    print(f"  range: {min(rates):.0f} to {max(rates):.0f} req/s")
            finally:
                server.terminate()
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
