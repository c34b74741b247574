"""Mailing creation benchmark: a million-subscriber mailing recorded, and its first copy leaving.

    .venv/bin/python bench/create_mailing.py [--sizes 10000,1000000] [--runs 2]
        [--stores sqlite,postgresql] [--modes single,per-reader] [--pg-url URL]

For each store (a SQLite file, and a throwaway database made on the PostgreSQL server of
`--pg-url` or NEWSLETTER_TEST_PG_URL, dropped afterwards), each mode and each size, it fills a
store with the subscribers (in SQL, so setting up is quick) and 15 briefs over 12 countries, then
runs `newsletter send daily-en` in a subprocess, as an operator does, with [transport] SMTP to
Postfix's smtp-sink on 127.0.0.1 (4 connections). It times, from the command's start:
  created:     the "mailing created" log line (selection, rendering, every delivery recorded);
  first copy:  the first message smtp-sink writes to its dump folder;
then stops the send with SIGTERM (it pauses, as Ctrl-C does) and prints the peak resident memory
of the command's process and of the whole send (it and its workers), sampled every 20 ms, the
deliveries by state, and the load average before and after, since the machine may be shared.
  single:     every subscriber chose no country, so every copy is the whole mailing;
  per-reader: each chose 0 to 3 of the 12 countries at random (seeded): 252 distinct sets of
              briefs besides the whole mailing, each rendered and stored once.
It also prints the CPU time the command's process had used when the mailing was created: on
SQLite that is the creation's own work, whatever else the machine is doing.
Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench import sample  # noqa: E402
from bench.reader import BRIEFS, COUNTRIES  # noqa: E402
from bench.send import PARAGRAPH, free_port  # noqa: E402
from newsletter import briefs  # noqa: E402
from newsletter.config import load  # noqa: E402
from newsletter.store import open_store, schema  # noqa: E402

NEWSLETTER = ROOT / ".venv" / "bin" / "newsletter"
SECRET = "bench-secret-key-0123456789abcdefghijklmnop"
# Distinct rows of countries to draw from (each reader takes row id % SETS): enough that every
# choice of 0 to 3 of the 12 countries, in any order, turns up.
SETS = 4096
DEADLINE = 300.0


def sink(port: int, dump: Path) -> subprocess.Popen[bytes]:
    """smtp-sink writing each message to `dump`, so the first copy's arrival can be seen."""
    dump.mkdir(mode=0o777)
    dump.chmod(0o777)
    process = subprocess.Popen(["smtp-sink", "-u", "nobody", "-d", f"{dump}/", f"127.0.0.1:{port}", "1000"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return process


def fill(engine: sa.Engine, config, subscribers: int, per_reader: bool, rng: random.Random) -> None:
    """15 briefs and `subscribers` active readers, written by the store itself from a table of country sets."""
    with engine.begin() as conn:
        for i in range(1, BRIEFS + 1):
            tagged = (COUNTRIES[(i - 1) % 12],) + ((COUNTRIES[(i * 5) % 12],) if i % 3 == 0 else ())
            item = sample.brief(i, PARAGRAPH, 1)
            briefs.upsert(conn, briefs.Brief(**{**item.__dict__, "id": None, "countries": tagged}),
                          site_url=config.publication.site_url)
        sets = [json.dumps(rng.sample(COUNTRIES, rng.randint(0, 3)) if per_reader else []) for _ in range(SETS)]
        conn.exec_driver_sql("CREATE TEMPORARY TABLE bench_sets (n INTEGER PRIMARY KEY, countries TEXT)")
        conn.execute(sa.text("INSERT INTO bench_sets VALUES (:n, :c)"), [{"n": n, "c": c} for n, c in enumerate(sets)])
        if conn.dialect.name == "sqlite":
            numbers = f"WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i + 1 < {subscribers})"
            source, at, cast = "g", "'2026-03-05 12:00:00.000000'", ""
        else:
            numbers = ""
            source, at, cast = f"generate_series(0, {subscribers - 1}) AS g(i)", "'2026-03-05 12:00:00+00'", "::json"
        conn.exec_driver_sql(
            f"{numbers} INSERT INTO subscribers (email, name, language, editions, countries, status, soft_bounces, "
            f"created_at, updated_at) SELECT 'reader' || i || '@example.net', 'Reader ' || i, 'en', '[]'{cast}, "
            f"s.countries{cast}, 'active', 0, {at}, {at} FROM {source} JOIN bench_sets s ON s.n = mod(i, {SETS}) "
            f"ORDER BY i"
        )
        conn.exec_driver_sql("DROP TABLE bench_sets")
    # A store in use has statistics; a fresh one would mislead the planner.
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


class Watch:
    """Peak resident memory of a process and of it with its descendants, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_parent = 0
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _children(pid: int) -> list[int]:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            pids, todo = [self.pid], self._children(self.pid)
            while todo:
                pid = todo.pop()
                pids.append(pid)
                todo += self._children(pid)
            sizes = [self._rss(p) for p in pids]
            self.peak_parent = max(self.peak_parent, sizes[0])
            self.peak_total = max(self.peak_total, sum(sizes))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    created: float = 0.0
    cpu: float = 0.0
    first: float = 0.0
    parent_mb: float = 0.0
    total_mb: float = 0.0
    states: dict[str, int] = field(default_factory=dict)
    copies: int = 0


def send(folder: Path, dump: Path) -> Result:
    """`newsletter send daily-en` until its first copy reaches the sink, then SIGTERM."""
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": SECRET}
    result = Result()
    started = time.monotonic()
    command = subprocess.Popen([str(NEWSLETTER), "--config", str(folder / "config.toml"), "send", "daily-en"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    watch = Watch(command.pid)
    log: list[str] = []

    def read() -> None:
        for line in command.stderr:
            log.append(line)
            if "mailing created" in line and not result.created:
                result.created = time.monotonic() - started
                result.cpu = cpu_seconds(command.pid)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        while not result.first:
            if command.poll() is not None:
                raise SystemExit("newsletter send stopped before its first copy:\n" + "".join(log[-20:]))
            if time.monotonic() - started > DEADLINE:
                raise SystemExit(f"no copy within {DEADLINE:.0f} s:\n" + "".join(log[-20:]))
            with os.scandir(dump) as entries:
                if any(True for _ in entries):
                    result.first = time.monotonic() - started
                    break
            time.sleep(0.005)
        command.send_signal(signal.SIGTERM)
        command.wait(timeout=120)
    finally:
        if command.poll() is None:
            os.killpg(command.pid, signal.SIGKILL)
            command.wait()
        watch.stop()
        reader.join(timeout=5)
    result.parent_mb = watch.peak_parent / 2**20
    result.total_mb = watch.peak_total / 2**20
    return result


def pg_database(url: str) -> tuple[str, callable]:
    """A throwaway database on the server of `url`: its URL and how to drop it."""
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"bench_create_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()

    return sa.make_url(url).set(database=name).render_as_string(hide_password=False), drop


def run_one(tmp: Path, store: str, pg_url: str, subscribers: int, per_reader: bool, seed: int) -> Result:
    folder = Path(tempfile.mkdtemp(dir=tmp))
    folder.chmod(0o755)  # smtp-sink runs as nobody and writes below it
    port = free_port()
    drop = None
    if store == "sqlite":
        url = f"sqlite:///{folder}/store.sqlite3"
    else:
        url, drop = pg_database(pg_url)
    try:
        path = folder / "config.toml"
        config = sample.write_config(path, edition="max_items = 15\n", tables=(
            f'[transport]\nkind = "smtp"\nhost = "127.0.0.1"\nport = {port}\nconnections = 4\n'))
        if store != "sqlite":
            path.write_text(path.read_text().replace(config.store_url, url))
            config = load(path)
        engine = open_store(url)
        fill(engine, config, subscribers, per_reader, random.Random(seed))
        engine.dispose()
        dump = folder / "sink"
        smtp = sink(port, dump)
        try:
            result = send(folder, dump)
        finally:
            smtp.terminate()
            smtp.wait()
        engine = open_store(url)
        d = schema.deliveries
        with engine.connect() as conn:
            result.states = dict(conn.execute(sa.select(d.c.state, sa.func.count()).group_by(d.c.state)).all())
            result.copies = conn.scalar(sa.select(sa.func.count()).select_from(schema.mailing_contents))
        engine.dispose()
        return result
    finally:
        if drop is not None:
            drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--modes", default="single,per-reader")
    parser.add_argument("--pg-url", default=os.environ.get("NEWSLETTER_TEST_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:55432/postgres"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    stores = args.stores.split(",")
    modes = args.modes.split(",")
    print(f"{BRIEFS} briefs over {len(COUNTRIES)} countries; `newsletter send daily-en` to smtp-sink, 4 connections, "
          f"{os.cpu_count()} CPUs; times from the command's start")
    with tempfile.TemporaryDirectory(prefix="bench-create-") as tmp:
        Path(tmp).chmod(0o755)
        for run in range(args.runs):
            for store in stores:
                for mode in modes:
                    for size in sizes:
                        load = os.getloadavg()[0]
                        r = run_one(Path(tmp), store, args.pg_url, size, mode == "per-reader", seed=run)
                        states = ", ".join(f"{n:,} {s}" for s, n in sorted(r.states.items()))
                        print(f"run {run + 1} {store:10} {mode:10} {size:>9,} subscribers: created {r.created:5.1f} s "
                              f"(CPU {r.cpu:4.1f} s), first copy {r.first:5.1f} s; peak RSS command {r.parent_mb:4.0f} "
                              f"MB, with workers {r.total_mb:4.0f} MB; {r.copies} stored copies; {states}; "
                              f"load {load:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
