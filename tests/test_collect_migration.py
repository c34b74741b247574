"""Migration 0002 on a store with one article stored twice (REST API and RSS), mailed once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from newsletter import editions
from newsletter.store import schema, upgrade
from newsletter.store.db import _alembic_config, create_engine
from tests.support.editions import make_config

T = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
# The columns briefs and mailings had at revision 0001.
TYPES = {"authors": sa.JSON, "countries": sa.JSON, "tags": sa.JSON, "brief_ids": sa.JSON,
         **{c: schema.UTCDateTime for c in ("published_at", "modified_at", "first_seen_at", "updated_at", "cutoff",
                                           "created_at")}}
BRIEFS_0001 = sa.table(
    "briefs", *(sa.column(c, TYPES.get(c)) for c in (
        "id", "source", "key", "guid", "url", "title", "authors", "published_at", "modified_at", "language",
        "countries", "tags", "lede", "analysis", "image_url", "content_hash", "first_seen_at", "updated_at")),
)
MAILINGS_0001 = sa.table("mailings", *(sa.column(c, TYPES.get(c)) for c in (
    "id", "edition", "slot", "language", "status", "subject", "preheader", "brief_ids", "cutoff", "created_at")))


def _brief(conn: sa.Connection, source: str, key: str, url: str, seen: datetime, lede: str) -> int:
    return conn.execute(BRIEFS_0001.insert().values(
        source=source, key=key, guid=f"tag:briefs.example.org,2026-03-02:{source}/{key}", url=url, title="Port seizure",
        authors=["Ana Ruiz"], published_at=T, modified_at=T, language="en", countries=["colombia"], tags=[],
        lede=lede, analysis="", image_url=None, content_hash=f"hash-{source}", first_seen_at=seen, updated_at=seen,
    ).returning(BRIEFS_0001.c.id)).scalar_one()


def test_0002_merges_copies_of_one_article_and_keeps_every_mailing_that_carried_them(store_url):
    engine = create_engine(store_url)
    command.upgrade(_alembic_config(engine), "0001")
    with engine.begin() as conn:
        # The RSS copy was stored first (and mailed); the REST API copy an hour later.
        rss = _brief(conn, "rss-en", "https://briefs.example.org/?p=101",
                     "https://briefs.example.org/news/port-seizure/?utm_source=rss", T, "<p>Feed text.</p>")
        api = _brief(conn, "wp-en", "101", "https://Briefs.example.org/news/port-seizure",
                     T + timedelta(hours=1), "<p>API text.</p>")
        other = _brief(conn, "wp-en", "102", "https://briefs.example.org/news/another-story/",
                       T + timedelta(hours=1), "<p>Other.</p>")
        conn.execute(MAILINGS_0001.insert().values(
            edition="daily-en", slot="manual-1", language="en", status="done", subject="s", preheader="",
            brief_ids=[api, other], cutoff=T + timedelta(hours=2), created_at=T))
    upgrade(engine)
    b, s, m = schema.briefs, schema.sightings, schema.mailings
    with engine.connect() as conn:
        rows = conn.execute(sa.select(b).order_by(b.c.id)).all()
        assert [r.id for r in rows] == [rss, other]
        kept = rows[0]
        # The oldest identity stays (Atom id, first seen); the richest copy's text (the API's) wins.
        assert kept.guid == "tag:briefs.example.org,2026-03-02:rss-en/https://briefs.example.org/?p=101"
        assert kept.first_seen_at == T
        assert kept.lede == "<p>API text.</p>" and kept.content_rank == 3
        assert (kept.site, kept.post_id) == ("briefs.example.org", 101)
        assert kept.canonical_url == "https://briefs.example.org/news/port-seizure"
        assert kept.withdrawn_at is None
        seen = conn.execute(sa.select(s.c.source, s.c.key, s.c.brief_id).order_by(s.c.source)).all()
        assert [tuple(r) for r in seen] == [("rss-en", "https://briefs.example.org/?p=101", rss),
                                            ("wp-en", "101", rss), ("wp-en", "102", other)]
        # The mailing that carried the API copy now names the kept brief: it is never mailed again.
        assert conn.execute(sa.select(m.c.brief_ids)).scalar_one() == [rss, other]
    config = make_config(store_url, Path("."))
    with engine.connect() as conn:
        waiting = editions.select(conn, config.editions[0], after=T - timedelta(days=1), until=T + timedelta(days=1))
    assert [x.id for x in waiting.briefs] == []
    engine.dispose()
