"""The store on a real SQLite file and a real PostgreSQL: migrations, UTC times, brief upserts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from newsletter import briefs
from newsletter.store import open_store, schema, upgrade
from tests.support.cli import run_json
from tests.support.configs import base_config, write_config


def sample(**changes) -> briefs.Brief:
    t = datetime(2026, 3, 4, 15, 30, tzinfo=timezone.utc)
    values = dict(
        source="site-en", key="101", url="https://briefs.example.org/news/a/", title="A title",
        published_at=t, modified_at=t, language="en", authors=("Ana Ruiz", "Ben Ode"),
        countries=("colombia",), tags=("Coca",), lede="<p>News.</p>", analysis="<p>Why.</p>",
    )
    values.update(changes)
    return briefs.Brief(**values)


def test_upgrade_is_idempotent_and_creates_every_table(engine: sa.Engine) -> None:
    assert upgrade(engine)[0] == upgrade(engine)[1]
    names = set(sa.inspect(engine).get_table_names())
    assert set(schema.metadata.tables) <= names


def test_times_come_back_as_aware_utc(engine: sa.Engine) -> None:
    bogota = timezone(timedelta(hours=-5))
    with engine.begin() as conn:
        briefs.upsert(conn, sample(published_at=datetime(2026, 3, 4, 10, 30, tzinfo=bogota)), site_url="https://x.org")
    with engine.connect() as conn:
        (stored,) = briefs.recent(conn)
    assert stored.published_at == datetime(2026, 3, 4, 15, 30, tzinfo=timezone.utc)
    assert stored.published_at.tzinfo is not None


def test_upsert_new_unchanged_updated_keeps_identity(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        outcome, brief_id = briefs.upsert(conn, sample(), site_url="https://briefs.example.org")
    assert outcome == "new"
    with engine.begin() as conn:
        assert briefs.upsert(conn, sample(), site_url="https://briefs.example.org") == ("unchanged", brief_id)
    edited = sample(title="A better title", modified_at=datetime(2026, 3, 5, tzinfo=timezone.utc))
    with engine.begin() as conn:
        assert briefs.upsert(conn, edited, site_url="https://briefs.example.org") == ("updated", brief_id)
    with engine.connect() as conn:
        (stored,) = briefs.by_ids(conn, [brief_id])
        assert briefs.count(conn) == 1
    assert stored.title == "A better title"
    assert stored.guid == "tag:briefs.example.org,2026-03-04:site-en/101"
    assert stored.authors == ("Ana Ruiz", "Ben Ode")


def test_recent_filters_by_country_and_language(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for i in range(30):
            briefs.upsert(
                conn,
                sample(key=str(i), url=f"https://briefs.example.org/news/{i}/",
                       countries=("mexico",) if i % 10 == 0 else ("colombia",),
                       language="es" if i % 2 else "en",
                       published_at=datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(hours=i)),
                site_url="https://x.org",
            )
    with engine.connect() as conn:
        mexico = briefs.recent(conn, country="mexico", limit=5)
        assert [b.key for b in mexico] == ["20", "10", "0"]
        assert all(b.language == "es" for b in briefs.recent(conn, language="es"))
        assert briefs.countries_in(conn, "en") == ["colombia", "mexico"]


def test_db_upgrade_command(tmp_path: Path) -> None:
    path = write_config(tmp_path, base_config(f"sqlite:///{tmp_path / 'store.sqlite3'}"))
    code, first = run_json("db", "upgrade", config=path)
    assert code == 0 and first["changed"] is True and first["from"] is None
    code, second = run_json("db", "upgrade", config=path)
    assert code == 0 and second["changed"] is False
    engine = open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}", migrate=False)
    assert "briefs" in sa.inspect(engine).get_table_names()
    engine.dispose()
