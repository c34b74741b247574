"""Feed benchmark: build time for 50 and 5,000 stored briefs, and what `newsletter serve` answers per second.

    .venv/bin/python bench/feed.py [--seconds 5] [--threads 4]

Everything runs in a temporary folder on a SQLite store; the server listens on 127.0.0.1
only and the load is bounded by time. The load comes from this process (threads with
keep-alive connections) while `newsletter serve` runs in its own process.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from newsletter import briefs, feeds  # noqa: E402
from newsletter.config import load  # noqa: E402
from newsletter.store import open_store  # noqa: E402

COUNTRIES = ["colombia", "mexico", "venezuela", "ecuador", "peru", "honduras", "guatemala", "brazil",
             "el-salvador", "haiti", "costa-rica", "panama"]
WORDS = ("officials police said the shipment of cocaine was hidden in a container bananas bound for Europe "
         "third seizure port this year traffickers route moved north authorities army navy gang cartel "
         "prosecutors arrested leader network money laundering border crossing river coast airport").split()

CONFIG = """
[publication]
name = "Bench Briefs"
site_url = "https://briefs.example.org"
public_url = "https://news.example.org"
sender = "Bench <news@example.org>"

[store]
url = "sqlite:///store.sqlite3"

[[sources]]
name = "site-en"
kind = "wordpress"
url = "https://briefs.example.org"
language = "en"

[[sources]]
name = "site-es"
kind = "wordpress"
url = "https://es.briefs.example.org"
language = "es"

[feed]
output_dir = "public/feeds"

[web]
host = "127.0.0.1"
port = {port}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sentences(rng: random.Random, count: int) -> str:
    """Varied text, so gzip figures are not flattered by repetition."""
    return " ".join(" ".join(rng.choices(WORDS, k=rng.randint(12, 25))).capitalize() + "." for _ in range(count))


def brief(n: int, rng: random.Random) -> briefs.Brief:
    language = "es" if n % 3 == 0 else "en"
    at = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(hours=3 * n)
    paragraphs = "".join(f"<p>{sentences(rng, rng.randint(2, 4))}</p>" for _ in range(3))
    return briefs.Brief(
        source=f"site-{language}", key=str(n), url=f"https://briefs.example.org/news/brief-{n}/",
        title=f"Brief {n}: authorities seize cocaine at the port", published_at=at, modified_at=at,
        language=language, authors=("Ana Ruiz", "Ben Ode")[: rng.randint(1, 2)],
        countries=tuple(rng.sample(COUNTRIES, rng.randint(1, 2))), tags=("Cocaine", "Ports"),
        lede=paragraphs, analysis=paragraphs,
    )


def fill(folder: Path, count: int, port: int):
    (folder / "config.toml").write_text(CONFIG.replace("{port}", str(port)), encoding="utf-8")
    config = load(folder / "config.toml")
    engine = open_store(config.store_url)
    rng = random.Random(count)
    with engine.begin() as conn:
        for n in range(count):
            briefs.upsert(conn, brief(n, rng), site_url=config.publication.site_url)
    return config, engine


def time_builds(count: int, port: int, folder: Path):
    config, engine = fill(folder, count, port)
    t0 = time.perf_counter()
    first = feeds.build(config, engine)
    t1 = time.perf_counter()
    second = feeds.build(config, engine)
    t2 = time.perf_counter()
    with engine.begin() as conn:
        briefs.upsert(conn, brief(count, random.Random(0)), site_url=config.publication.site_url)
    t3 = time.perf_counter()
    third = feeds.build(config, engine)
    t4 = time.perf_counter()
    size = sum(p.stat().st_size for p in first.written)
    print(f"build {count:>5} briefs: first {t1 - t0:6.2f} s ({len(first.written)} files, {size / 1e6:.1f} MB); "
          f"unchanged {t2 - t1:5.2f} s ({len(second.written)} rewritten); "
          f"one new brief {t4 - t3:5.2f} s ({len(third.written)} rewritten)")
    engine.dispose()
    return config


def load_test(url_host: str, port: int, path: str, headers: dict[str, str], seconds: float, threads: int,
              expect: int) -> tuple[float, int]:
    stop = time.monotonic() + seconds
    counts = [0] * threads
    errors = [0] * threads

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(url_host, port, timeout=10)
        while time.monotonic() < stop:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status == expect:
                counts[i] += 1
            else:
                errors[i] += 1
        conn.close()

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / (time.monotonic() - started), sum(errors)


def serve_and_load(config_path: Path, port: int, seconds: float, threads: int) -> None:
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": "bench-secret"}
    server = subprocess.Popen([sys.executable, "-m", "newsletter", "--config", str(config_path), "serve"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/feeds/en.atom")
                response = conn.getresponse()
                body = response.read()
                etag = response.getheader("ETag")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("newsletter serve did not start")
                time.sleep(0.2)
        conn.request("GET", "/feeds/en.atom", headers={"Accept-Encoding": "gzip"})
        gz = conn.getresponse()
        gz_body, gz_etag = gz.read(), gz.getheader("ETag")
        conn.close()
        print(f"serve /feeds/en.atom: {len(body) / 1e3:.0f} kB, {len(gz_body) / 1e3:.0f} kB gzipped; "
              f"{threads} client threads with keep-alive for {seconds:g} s each")
        cases = [
            ("200 identity", {}, 200),
            ("200 gzip", {"Accept-Encoding": "gzip"}, 200),
            ("304 If-None-Match", {"If-None-Match": etag}, 304),
            ("304 gzip If-None-Match", {"Accept-Encoding": "gzip", "If-None-Match": gz_etag}, 304),
        ]
        for name, headers, expect in cases:
            rate, errors = load_test("127.0.0.1", port, "/feeds/en.atom", headers, seconds, threads, expect)
            print(f"  {name:<24} {rate:8.0f} requests/s" + (f"  ({errors} unexpected answers)" if errors else ""))
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    parser.add_argument("--threads", type=int, default=4, help="client threads")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp, "50"), Path(tmp, "5000")
        small.mkdir()
        large.mkdir()
        time_builds(50, free_port(), small)
        port = free_port()
        config = time_builds(5000, port, large)
        serve_and_load(config.path, port, args.seconds, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
