"""Per-reader copies benchmark: render each distinct set of briefs once, send nearly as fast as one content.

    .venv/bin/python bench/reader.py [--subscribers 100000] [--runs 2]

A mailing of 15 briefs tagged over 12 countries, created with `editions.prepare_mailing` (so
rendering, link tracking and the deliveries are the real ones) and sent over SMTP to Postfix's
smtp-sink on 127.0.0.1 with `send_mailing` ([transport].connections = 4). Two stores each run:
  single:     every subscriber chose no country, so every copy is the whole mailing;
  per-reader: each chose 0 to 3 of the 12 countries at random (seeded), so copies differ.
It counts the renders (they must equal the distinct sets of briefs the deliveries carry), and
prints the creation time, the send rate of each, their ratio (per-reader over single: the target
is at least 0.80), and the load average before and after, since the machine may be shared.
Every run alternates which mode goes first. Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench import sample  # noqa: E402
from bench.send import PARAGRAPH, free_port, smtp_sink  # noqa: E402
from newsletter import briefs, contents, editions  # noqa: E402
from newsletter.config import Config  # noqa: E402
from newsletter.send.dispatch import send_mailing  # noqa: E402
from newsletter.store import open_store, schema, utcnow  # noqa: E402

BRIEFS = 15
COUNTRIES = ["colombia", "mexico", "venezuela", "ecuador", "honduras", "guatemala", "peru", "brazil",
             "el-salvador", "bolivia", "paraguay", "haiti"]


def add_briefs(conn: sa.Connection, config: Config) -> None:
    """The mailing's 15 briefs, each about one country and some about a second: 12 countries in all."""
    for i in range(1, BRIEFS + 1):
        tagged = (COUNTRIES[(i - 1) % 12],) + ((COUNTRIES[(i * 5) % 12],) if i % 3 == 0 else ())
        item = sample.brief(i, PARAGRAPH, 1)
        briefs.upsert(conn, briefs.Brief(**{**item.__dict__, "id": None, "countries": tagged}),
                      site_url=config.publication.site_url)


def setup(folder: Path, port: int, subscribers: int, per_reader: bool, rng: random.Random):
    folder.mkdir()
    os.environ.setdefault("NEWSLETTER_SECRET_KEY", "bench-secret-key-0123456789abcdefghijklmnop")
    config = sample.write_config(folder / "config.toml", edition="max_items = 15\n", tables=(
        f'[transport]\nkind = "smtp"\nhost = "127.0.0.1"\nport = {port}\nconnections = 4\n'))
    engine = open_store(config.store_url)
    with engine.begin() as conn:
        add_briefs(conn, config)
        t0 = sample.CREATED
        for start in range(0, subscribers, 20_000):
            conn.execute(schema.subscribers.insert(), [
                {"email": f"reader{i}@example.net", "name": f"Reader {i}", "language": "en", "editions": [],
                 "countries": rng.sample(COUNTRIES, rng.randint(0, 3)) if per_reader else [],
                 "status": "active", "soft_bounces": 0, "created_at": t0, "updated_at": t0}
                for i in range(start, min(start + 20_000, subscribers))
            ])
    return config, engine


def run_mode(folder: Path, subscribers: int, per_reader: bool, seed: int) -> dict[str, float]:
    port = free_port()
    sink = smtp_sink(port)
    try:
        config, engine = setup(folder, port, subscribers, per_reader, random.Random(seed))
        renders = 0
        real_render = contents.render_mailing

        def counting(*args, **kwargs):
            nonlocal renders
            renders += 1
            return real_render(*args, **kwargs)

        contents.render_mailing = counting
        started = time.monotonic()
        try:
            now = utcnow() + timedelta(seconds=1)
            mailing_id = editions.prepare_mailing(config, engine, "daily-en", slot="bench", now=now)
        finally:
            contents.render_mailing = real_render
        created = time.monotonic() - started
        d = schema.deliveries
        with engine.connect() as conn:
            sets = conn.scalar(sa.select(sa.func.count(sa.distinct(sa.func.coalesce(d.c.content_key, "whole"))))
                               .where(d.c.mailing_id == mailing_id, d.c.state == "pending"))
            stored = conn.scalar(sa.select(sa.func.count()).select_from(schema.mailing_contents))
        # The whole mailing is always rendered (archive, readers who chose nothing); every other
        # set is rendered once and stored.
        if renders != stored + 1 or sets > renders:
            raise SystemExit(f"renders {renders} but {stored} stored copies and {sets} distinct sets sent")
        summary = send_mailing(config, engine, mailing_id, worker="bench")
        engine.dispose()
    finally:
        sink.terminate()
        sink.wait()
    return {"renders": renders, "sets": sets, "created": created, "sent": summary.sent, "failed": summary.failed,
            "skipped": summary.skipped, "seconds": summary.duration_seconds,
            "rate": summary.sent / summary.duration_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    print(f"{BRIEFS} briefs over {len(COUNTRIES)} countries, {args.subscribers:,} subscribers, SMTP to smtp-sink, "
          f"4 connections, {os.cpu_count()} CPUs")
    ratios = []
    with tempfile.TemporaryDirectory(prefix="bench-reader-") as tmp:
        for run in range(args.runs):
            order = (False, True) if run % 2 == 0 else (True, False)
            results = {}
            load_before = os.getloadavg()
            for per_reader in order:
                name = "per-reader" if per_reader else "single"
                results[name] = run_mode(Path(tmp) / f"{run}-{name}", args.subscribers, per_reader, seed=run)
            load_after = os.getloadavg()
            ratio = results["per-reader"]["rate"] / results["single"]["rate"]
            ratios.append(ratio)
            print(f"run {run + 1} (load average {load_before[0]:.1f} before, {load_after[0]:.1f} after):")
            for name, r in results.items():
                print(f"  {name:10} rendered {r['renders']:4} copies for {r['sets']:4} distinct sets, created in "
                      f"{r['created']:5.1f} s; sent {r['sent']:,} ({r['failed']} failed, {r['skipped']:,} skipped) in "
                      f"{r['seconds']:5.1f} s: {r['rate']:6,.0f} messages/s")
            print(f"  ratio      {ratio:.2f}x of the single-content rate")
    print(f"ratio over {len(ratios)} runs: {min(ratios):.2f}x to {max(ratios):.2f}x")


if __name__ == "__main__":
    main()
