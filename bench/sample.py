"""The benchmarks' sample publication: briefs of a known length and a one-edition config.

bench/render.py and bench/send.py measure the same kind of mailing, so they build it from
the same data; each script keeps its own paragraph text and extra config lines, which fix
the sizes its figures are quoted for.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from newsletter.briefs import Brief
from newsletter.config import Config, load

CREATED = datetime(2026, 3, 5, 12, 0, tzinfo=timezone.utc)
COUNTRIES = ["colombia", "mexico", "venezuela", "ecuador", "honduras", "guatemala", "peru", "brazil"]
CONFIG = """
[publication]
name = "InSight Crime"
site_url = "https://insightcrime.org"
public_url = "https://newsletter.example.org"
sender = "InSight Crime <newsletter@example.org>"
postal_address = "1 Example Street, Washington, DC"
donate_url = "https://insightcrime.org/donate/"
unsubscribe_mailto = "unsubscribe@example.org"
{publication}
[store]
url = "sqlite:///{folder}/store.sqlite3"

[[editions]]
name = "daily-en"
language = "en"
title = "InSight Crime Daily"
{edition}
{tables}
"""


def brief(i: int, paragraph: str, analysis_paragraphs: int) -> Brief:
    """Brief `i`: two paragraphs of lede and `analysis_paragraphs` of analysis, each `paragraph`
    (a format string with {place} and {n}) filled in for the brief's country."""
    place = COUNTRIES[i % len(COUNTRIES)].title()
    published = CREATED - timedelta(hours=i)
    return Brief(
        id=i, source="bench", key=str(i), url=f"https://insightcrime.org/news/brief-{i}/",
        title=f"Port corruption keeps cocaine moving through {place} despite record seizure {i}",
        published_at=published, modified_at=published, language="en", authors=("Ana Ruiz", "Ben Ode"),
        countries=(COUNTRIES[i % len(COUNTRIES)],),
        lede="".join(f"<p>{paragraph.format(place=place, n=i + k)}</p>" for k in range(2)),
        analysis="".join(f"<p>{paragraph.format(place=place, n=i + k)}</p>" for k in range(analysis_paragraphs)),
    )


def write_config(path: Path, *, publication: str = "", edition: str = "", tables: str = "") -> Config:
    """The sample config, with a store in `path`'s folder, written to `path` and loaded like the CLI does.
    The extra TOML lines go into [publication], into the edition, and after it (whole tables)."""
    path.write_text(CONFIG.format(folder=path.parent, publication=publication, edition=edition, tables=tables),
                    encoding="utf-8")
    return load(path)


@contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of `server_url`: its URL, dropped afterwards."""
    import sqlalchemy as sa

    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def children(pid: int) -> list[int]:
    """The process's direct children (Linux /proc), or none when it has gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, however deep."""
    found, todo = [], children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children(child)
    return found


def rss(pid: int) -> int:
    """The process's resident memory in bytes (0 when it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) the process has used so far, in seconds (0 when it has gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: utime and stime are the 12th and 13th fields, in clock ticks.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
