"""How fast and in how much memory `subscribers import` takes a large list, against a same-run reference.

    .venv/bin/python bench/import_subscribers.py [ROWS] [--pg SERVER_URL]

Writes a CSV of ROWS (default 1,000,000) subscribers into a temporary folder and runs
`newsletter subscribers import FILE --json` as an operator does (a subprocess: start-up, the
migration check and the progress-free output included) twice, all new then all updates, then
`subscribers export`. Each run's time, rows/s and peak resident memory (the child's own
getrusage) are printed with the machine's load average, and the CPU seconds the command
itself used (on PostgreSQL the server's work is not in it): on a shared machine, rows per CPU
second says what one free core would do.

The reference is the least any import of this file must do: Python's csv module reading the
same file and the database driver's own executemany inserting its rows, unchecked, into a
table of the same columns with a unique email index, in one transaction, in the same kind of
store. It shares the store, the disk and the load with our figures, so the ratio says what the
checks, the consent records and the suppression rules cost, whatever else the machine is doing.

SQLite always; with --pg, also PostgreSQL, in a throwaway database created on SERVER_URL (e.g.
postgresql://postgres@127.0.0.1:55432/postgres) and dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = "email,name,language,editions,countries,status,consent_at,consent_ip,consent_user_agent"
PROVIDERS = ["gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com", "proton.me", "gmx.de",
             "yahoo.es", "hotmail.es", "live.com"]
INVALID_EVERY = 100_000  # a few bad rows, as real lists have: they must be reported, not slow the rest


def domain(i: int) -> str:
    return PROVIDERS[i % 10] if i % 10 < 7 else f"news{i % 20_000}.example.org"


def write_csv(path: Path, rows: int) -> int:
    """ROWS addresses: 70% on ten big providers, the rest on 20,000 distinct domains. Returns the
    number of invalid rows written (a bad address, and a repeated one, every INVALID_EVERY rows)."""
    invalid = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(COLUMNS + "\n")
        for i in range(rows):
            lang, edition = ("es", "weekly-es") if i % 3 == 0 else ("en", "daily-en")
            email = f"Reader.{i}@{domain(i)}"
            if i % INVALID_EVERY == 50:
                email, invalid = f"reader {i}@{domain(i)}", invalid + 1
            elif i % INVALID_EVERY == 60:
                email, invalid = f"reader.{i - 1}@{domain(i - 1)}", invalid + 1
            f.write(f"{email},Reader {i},{lang},{edition},Colombia;México,active,2026-01-01T00:00:00Z,"
                    f"198.51.100.{i % 250},Mozilla/5.0 (X11; Linux x86_64)\n")
    return invalid


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run(argv: list[str], env: dict[str, str], codes: tuple[int, ...] = (0,)) -> tuple[float, float, float, str]:
    """(seconds, CPU seconds, peak RSS in MB, stdout) of one subprocess that must exit with one of `codes`."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in codes:
        raise SystemExit(f"{argv} failed ({status})")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


REFERENCE = """
import csv, sys
url, path = sys.argv[1], sys.argv[2]
sql = ("CREATE TABLE ref (id {serial} PRIMARY KEY, email VARCHAR(320) NOT NULL UNIQUE, name TEXT, language TEXT,"
       " editions TEXT, countries TEXT, status TEXT, consent_at TEXT, consent_ip TEXT, consent_user_agent TEXT)")
insert = ("INSERT INTO ref (email, name, language, editions, countries, status, consent_at, consent_ip,"
          " consent_user_agent) VALUES ({p})".format(p=", ".join(["{m}"] * 9)))
with open(path, encoding="utf-8", newline="") as f:
    reader = csv.reader(f)
    next(reader)
    if url.startswith("sqlite:"):
        import sqlite3
        db = sqlite3.connect(url.removeprefix("sqlite:"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=NORMAL")
        db.execute(sql.format(serial="INTEGER"))
        db.execute("BEGIN")
        db.executemany(insert.format(m="?"), reader)
        db.execute("COMMIT")
    else:
        import psycopg
        with psycopg.connect(url) as db, db.cursor() as cur:
            cur.execute(sql.format(serial="SERIAL"))
            cur.executemany(insert.format(m="%s"), reader)
"""


def reference(url: str, path: Path) -> tuple[float, float, float]:
    elapsed, cpu, rss, _ = run([sys.executable, "-c", REFERENCE, url, str(path)], dict(os.environ))
    return elapsed, cpu, rss


def write_config(folder: Path, store_url: str) -> Path:
    config = folder / "config.toml"
    config.write_text(f"""[publication]
name = "Bench"
site_url = "https://b.example.org"
public_url = "https://n.example.org"
sender = "Bench <n@example.org>"
[store]
url = "{store_url}"
[[editions]]
name = "daily-en"
language = "en"
[[editions]]
name = "weekly-es"
language = "es"
""", encoding="utf-8")
    return config


def bench_store(label: str, store_url: str, reference_url: str, path: Path, rows: int, invalid: int,
                folder: Path) -> None:
    config = write_config(folder, store_url)
    env = {**os.environ, "NEWSLETTER_SECRET_KEY": "bench-secret-key-0123456789abcdefghijklmnop"}
    cli = [str(ROOT / ".venv" / "bin" / "newsletter"), "--config", str(config), "subscribers"]
    # The store is created and migrated first, so neither figure includes building the schema.
    subprocess.run([*cli, "export", str(folder / "empty.csv")], env=env, check=True, stdout=subprocess.DEVNULL)
    before = load()
    ref_time, ref_cpu, ref_rss = reference(reference_url, path)
    print(f"{label}: reference (csv + driver executemany, unchecked): {ref_time:.1f} s, {rows / ref_time:,.0f} rows/s, "
          f"CPU {ref_cpu:.1f} s, peak RSS {ref_rss:.0f} MB; load {before}", flush=True)
    for what in ("all new", "all updates"):
        before = load()
        # Exit 1: the file's invalid rows were reported (and the valid ones imported).
        elapsed, cpu, rss, out = run([*cli, "import", str(path), "--json"], env, codes=(1,))
        summary = json.loads(out)
        if len(summary["invalid"]) != invalid or summary["added"] + summary["updated"] != rows - invalid:
            raise SystemExit(f"unexpected summary: { {k: v for k, v in summary.items() if k != 'invalid'} }, "
                             f"{len(summary['invalid'])} invalid")
        print(f"{label}: import ({what}): {elapsed:.1f} s, {rows / elapsed:,.0f} rows/s "
              f"({ref_time / elapsed:.2f}x the reference), CPU {cpu:.1f} s ({rows / cpu:,.0f} rows per CPU second), "
              f"peak RSS {rss:.0f} MB; added {summary['added']}, "
              f"updated {summary['updated']}, {len(summary['invalid'])} invalid reported by line; "
              f"load {before} -> {load()}", flush=True)
    before = load()
    elapsed, cpu, rss, _ = run([*cli, "export", str(folder / "export.csv")], env)
    print(f"{label}: export: {elapsed:.1f} s, {rows / elapsed:,.0f} rows/s, peak RSS {rss:.0f} MB; "
          f"load {before} -> {load()}", flush=True)


@contextmanager
def throwaway_database(server_url: str, name: str) -> Iterator[str]:
    engine = sa.create_engine(sa.make_url(server_url).set(drivername="postgresql+psycopg"),
                              isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(server_url).set(drivername="postgresql+psycopg", database=name) \
            .render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rows", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--pg", metavar="SERVER_URL", help="also PostgreSQL, in a throwaway database on this server")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nl-bench-import-"))
    try:
        path = folder / "list.csv"
        invalid = write_csv(path, args.rows)
        print(f"{args.rows:,} rows ({path.stat().st_size / 1e6:.0f} MB of CSV, {invalid} invalid), "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores", flush=True)
        (folder / "sqlite").mkdir()
        bench_store("SQLite", f"sqlite:///{folder / 'sqlite' / 'store.sqlite3'}",
                    f"sqlite:{folder / 'sqlite' / 'reference.sqlite3'}", path, args.rows, invalid, folder / "sqlite")
        if args.pg:
            (folder / "pg").mkdir()
            with throwaway_database(args.pg, f"nl_bench_import_{os.getpid()}") as store, \
                    throwaway_database(args.pg, f"nl_bench_import_ref_{os.getpid()}") as ref:
                bench_store("PostgreSQL", store, sa.make_url(ref).set(drivername="postgresql")
                            .render_as_string(hide_password=False), path, args.rows, invalid, folder / "pg")
    finally:
        if os.environ.get("KEEP") is None:
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
