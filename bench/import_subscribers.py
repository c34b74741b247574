"""How long `subscribers import` and `export` take for a large list (a new and a repeated import).

    .venv/bin/python bench/import_subscribers.py [ROWS] [STORE_URL]

Writes a CSV of ROWS (default 100,000) subscribers into a temporary folder, imports it twice
(all new, then all updates) and exports it, through the real CLI code, and prints the figures.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.config import parse  # noqa: E402
from newsletter.store import open_store  # noqa: E402
from newsletter.subscribers import csvfile  # noqa: E402
from newsletter.subscribers.profile import Vocabulary  # noqa: E402


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    folder = Path(tempfile.mkdtemp(prefix="nl-bench-"))
    url = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{folder / 'store.sqlite3'}"
    config = parse({
        "publication": {"name": "Bench", "site_url": "https://b.example.org", "public_url": "https://n.example.org",
                        "sender": "Bench <n@example.org>"},
        "store": {"url": url},
        "editions": [{"name": "daily-en", "language": "en"}, {"name": "weekly-es", "language": "es"}],
    }, folder / "config.toml")
    vocabulary = Vocabulary(config)
    path = folder / "list.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("email,name,language,editions,countries,status,consent_at,consent_ip\n")
        for i in range(rows):
            lang, edition = ("es", "weekly-es") if i % 3 == 0 else ("en", "daily-en")
            f.write(f"reader{i}@example{i % 50}.org,Reader {i},{lang},{edition},Colombia;Mexico,active,"
                    f"2026-01-01T00:00:00Z,198.51.100.{i % 250}\n")
    engine = open_store(config.store_url)
    print(f"{rows} rows, store {engine.url.get_backend_name()}")
    for label in ("import (all new)", "import (all updates)"):
        started = time.perf_counter()
        with open(path, encoding="utf-8") as f:
            parsed = csvfile.parse(f, vocabulary)
        parsed_at = time.perf_counter()
        with engine.begin() as conn:
            summary = csvfile.import_rows(conn, parsed, path.name)
        done = time.perf_counter()
        print(f"{label}: parse {parsed_at - started:.2f} s, store {done - parsed_at:.2f} s, "
              f"total {done - started:.2f} s ({rows / (done - started):,.0f} rows/s); "
              f"added {summary.added}, updated {summary.updated}")
    started = time.perf_counter()
    out = io.StringIO()
    with engine.connect() as conn:
        count = csvfile.write_csv(csvfile.export_records(conn), out)
    print(f"export: {count} rows in {time.perf_counter() - started:.2f} s")
    engine.dispose()
    if os.environ.get("KEEP") is None:
        for p in sorted(folder.iterdir(), reverse=True):
            p.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
