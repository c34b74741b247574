"""The brief: one article as we store it, and the store operations on briefs.

Collecting writes briefs through `upsert`; feeds and digests read them through the
query functions here, so no stage needs to know the table's columns.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Sequence

import sqlalchemy as sa

from newsletter.store import schema, utcnow

Outcome = Literal["new", "updated", "unchanged"]


@dataclass(frozen=True)
class Brief:
    source: str
    key: str  # stable id within the source: WordPress post id, else canonical URL
    url: str
    title: str
    published_at: datetime
    modified_at: datetime
    language: str
    authors: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()  # canonical English slugs, e.g. "colombia"
    tags: tuple[str, ...] = ()
    lede: str = ""  # sanitised HTML
    analysis: str = ""  # sanitised HTML; empty when the brief has no analysis section
    image_url: str | None = None
    # Set by the store:
    id: int | None = None
    guid: str = ""
    first_seen_at: datetime | None = None
    updated_at: datetime | None = None
    content_hash: str = field(default="")

    def computed_hash(self) -> str:
        """Hash of what a reader sees, so an edit is noticed and a re-fetch is not."""
        material = json.dumps(
            [self.url, self.title, list(self.authors), list(self.countries), list(self.tags),
             self.lede, self.analysis, self.image_url, self.language],
            ensure_ascii=False,
        )
        return hashlib.sha256(material.encode()).hexdigest()


def tag_uri(site_url: str, source: str, key: str, published_at: datetime) -> str:
    """An RFC 4151 tag URI: the feed entry id, minted once and never changed."""
    from urllib.parse import quote, urlsplit

    authority = urlsplit(site_url).hostname or "localhost"
    specific = quote(f"{source}/{key}", safe="/:@-._~")
    return f"tag:{authority},{published_at:%Y-%m-%d}:{specific}"


def from_row(row: sa.Row) -> Brief:
    return Brief(
        id=row.id,
        source=row.source,
        key=row.key,
        guid=row.guid,
        url=row.url,
        title=row.title,
        authors=tuple(row.authors or ()),
        published_at=row.published_at,
        modified_at=row.modified_at,
        language=row.language,
        countries=tuple(row.countries or ()),
        tags=tuple(row.tags or ()),
        lede=row.lede,
        analysis=row.analysis,
        image_url=row.image_url,
        content_hash=row.content_hash,
        first_seen_at=row.first_seen_at,
        updated_at=row.updated_at,
    )


def upsert(conn: sa.Connection, brief: Brief, *, site_url: str) -> tuple[Outcome, int]:
    """Store a collected brief: insert it, update it in place when it changed, else leave it.

    An update keeps the row's id, guid and first_seen_at, so feeds and mailings keep its identity.
    """
    b = schema.briefs
    digest = brief.computed_hash()
    now = utcnow()
    existing = conn.execute(
        sa.select(b.c.id, b.c.content_hash, b.c.modified_at).where(b.c.source == brief.source, b.c.key == brief.key)
    ).first()
    values = dict(
        url=brief.url,
        title=brief.title,
        authors=list(brief.authors),
        published_at=brief.published_at,
        modified_at=brief.modified_at,
        language=brief.language,
        countries=list(brief.countries),
        tags=list(brief.tags),
        lede=brief.lede,
        analysis=brief.analysis,
        image_url=brief.image_url,
        content_hash=digest,
    )
    if existing is None:
        result = conn.execute(
            b.insert().values(
                source=brief.source,
                key=brief.key,
                guid=tag_uri(site_url, brief.source, brief.key, brief.published_at),
                first_seen_at=now,
                updated_at=now,
                **values,
            )
        )
        return "new", result.inserted_primary_key[0]
    if existing.content_hash == digest:
        return "unchanged", existing.id
    # Keep the later of the two modified times: a re-fetch of an older copy never rolls a brief back.
    values["modified_at"] = max(brief.modified_at, existing.modified_at)
    conn.execute(b.update().where(b.c.id == existing.id).values(updated_at=now, **values))
    return "updated", existing.id


def by_ids(conn: sa.Connection, ids: Sequence[int]) -> list[Brief]:
    """Briefs in the order of `ids` (a mailing's frozen order); missing ids are skipped."""
    if not ids:
        return []
    rows = {r.id: from_row(r) for r in conn.execute(sa.select(schema.briefs).where(schema.briefs.c.id.in_(list(ids))))}
    return [rows[i] for i in ids if i in rows]


def recent(
    conn: sa.Connection,
    *,
    language: str | None = None,
    country: str | None = None,
    limit: int = 50,
    before: datetime | None = None,
) -> list[Brief]:
    """Newest first by published time, optionally one language and one country."""
    b = schema.briefs
    query = sa.select(b).order_by(b.c.published_at.desc(), b.c.id.desc())
    if language:
        query = query.where(b.c.language == language)
    if before:
        query = query.where(b.c.published_at < before)
    if country is None:
        return [from_row(r) for r in conn.execute(query.limit(limit))]
    # Countries are a JSON list: filter in Python, reading in pages so a rare country stays cheap.
    found: list[Brief] = []
    offset = 0
    page = max(limit * 4, 200)
    while len(found) < limit:
        rows = conn.execute(query.limit(page).offset(offset)).all()
        found.extend(from_row(r) for r in rows if country in (r.countries or ()))
        if len(rows) < page:
            break
        offset += page
    return found[:limit]


def seen_between(
    conn: sa.Connection, *, language: str, after: datetime, until: datetime
) -> list[Brief]:
    """Briefs first stored in (after, until], oldest first: what a new mailing may carry."""
    b = schema.briefs
    rows = conn.execute(
        sa.select(b)
        .where(b.c.language == language, b.c.first_seen_at > after, b.c.first_seen_at <= until)
        .order_by(b.c.published_at, b.c.id)
    )
    return [from_row(r) for r in rows]


def countries_in(conn: sa.Connection, language: str) -> list[str]:
    """Every country slug that has at least one brief in `language`."""
    rows = conn.execute(sa.select(schema.briefs.c.countries).where(schema.briefs.c.language == language))
    return sorted({c for (cs,) in rows for c in (cs or ())})


def count(conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(schema.briefs)).scalar_one()
