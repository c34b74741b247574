"""The brief: one article as we store it, and the store operations on briefs.

A brief is a published article, whatever sources saw it: each source's sighting of it is
a row of `sightings`, and `upsert` finds the brief a collected item belongs to by that
sighting, by the article's normalised URL or by its WordPress post id on its site. The
richest source's content wins. A withdrawn brief (`withdrawn_at` set) stays stored but is
not public: the query functions here return public briefs only, unless asked otherwise.

Collecting writes briefs through `upsert` and `withdraw`; feeds and digests read them
through the query functions here, so no stage needs to know the table's columns.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Sequence

import sqlalchemy as sa

from newsletter.identity import canonical_url
from newsletter.store import schema, utcnow

Outcome = Literal["new", "updated", "unchanged"]

# Content ranks: which source's text of an article is kept when several sources saw it.
RANK_FEED_SUMMARY = 0  # a feed item with only its description
RANK_PAGE = 1  # the article page, read out of its HTML
RANK_FEED_CONTENT = 2  # a feed item's full content (content:encoded, atom:content)
RANK_API = 3  # the WordPress REST API's post


def public_clause(table: sa.Table | None = None) -> sa.ColumnElement[bool]:
    """The SQL condition "not withdrawn", for any query over the briefs table."""
    return (schema.briefs if table is None else table).c.withdrawn_at.is_(None)


def is_public(brief: "Brief") -> bool:
    """Whether a brief may go out (feeds, new mailings, pages): the publisher has not withdrawn it."""
    return brief.withdrawn_at is None


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
    # The WordPress post id on its site (host and path, no scheme), when the source told us.
    post_id: int | None = None
    site: str = ""
    content_rank: int = RANK_PAGE
    # Set by the store:
    id: int | None = None
    guid: str = ""
    first_seen_at: datetime | None = None
    updated_at: datetime | None = None
    content_hash: str = field(default="")
    withdrawn_at: datetime | None = None
    withdrawn_reason: str = ""

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
        post_id=row.post_id,
        site=row.site or "",
        content_rank=row.content_rank,
        withdrawn_at=row.withdrawn_at,
        withdrawn_reason=row.withdrawn_reason or "",
    )


def _match(conn: sa.Connection, brief: Brief, canonical: str) -> int | None:
    """The stored brief that is the same article: by WordPress post id on its site, else by URL."""
    b, s = schema.briefs, schema.sightings
    if brief.post_id is not None and brief.site:
        found = conn.execute(sa.select(b.c.id).where(b.c.site == brief.site, b.c.post_id == brief.post_id)
                             .order_by(b.c.id).limit(1)).scalar()
        if found is not None:
            return found
    found = conn.execute(sa.select(b.c.id).where(b.c.canonical_url == canonical).order_by(b.c.id).limit(1)).scalar()
    if found is not None:
        return found
    return conn.execute(sa.select(s.c.brief_id).where(s.c.canonical_url == canonical).order_by(s.c.id).limit(1)).scalar()


def upsert(conn: sa.Connection, brief: Brief, *, site_url: str, now: datetime | None = None) -> tuple[Outcome, int]:
    """Store a collected item: a new brief, or a sighting of one already stored.

    The brief's content changes only when the item's source is at least as rich as the one
    that gave the stored content (`content_rank`) and the content differs, so an article
    seen by several sources is updated once. An update keeps the row's id, guid and
    first_seen_at, so feeds and mailings keep its identity. A withdrawn brief comes back
    only when its source shows it modified after it was withdrawn (republished).
    `now` is the collect's time: one per source run, so briefs stored together share it.
    """
    b, s = schema.briefs, schema.sightings
    digest = brief.computed_hash()
    now = now or utcnow()
    canonical = canonical_url(brief.url)
    sighting = conn.execute(
        sa.select(s.c.id, s.c.brief_id, s.c.content_hash, s.c.modified_at)
        .where(s.c.source == brief.source, s.c.key == brief.key)
    ).first()
    brief_id = sighting.brief_id if sighting else _match(conn, brief, canonical)
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
        canonical_url=canonical,
        content_rank=brief.content_rank,
    )
    seen = dict(url=brief.url, canonical_url=canonical, content_hash=digest, modified_at=brief.modified_at)
    if brief_id is None:
        brief_id = conn.execute(
            b.insert().values(
                source=brief.source,
                key=brief.key,
                guid=tag_uri(site_url, brief.source, brief.key, brief.published_at),
                first_seen_at=now,
                updated_at=now,
                site=brief.site or None,
                post_id=brief.post_id,
                **values,
            )
        ).inserted_primary_key[0]
        conn.execute(s.insert().values(brief_id=brief_id, source=brief.source, key=brief.key, first_seen_at=now,
                                       **seen))
        return "new", brief_id
    if sighting and sighting.content_hash == digest and sighting.modified_at == brief.modified_at:
        return "unchanged", brief_id
    if sighting:
        conn.execute(s.update().where(s.c.id == sighting.id).values(**seen))
    else:
        conn.execute(s.insert().values(brief_id=brief_id, source=brief.source, key=brief.key, first_seen_at=now,
                                       **seen))
    stored = conn.execute(
        sa.select(b.c.content_hash, b.c.modified_at, b.c.content_rank, b.c.withdrawn_at, b.c.post_id)
        .where(b.c.id == brief_id)
    ).one()
    changes: dict[str, object] = {}
    if brief.content_rank >= stored.content_rank and digest != stored.content_hash:
        changes.update(values)
        # Keep the later of the two modified times: a re-fetch of an older copy never rolls a brief back.
        changes["modified_at"] = max(brief.modified_at, stored.modified_at)
    if stored.withdrawn_at is not None and brief.modified_at > stored.withdrawn_at:
        changes.update(withdrawn_at=None, withdrawn_reason=None)
    # Identity and rank alone are bookkeeping: the brief a reader sees is unchanged.
    quiet: dict[str, object] = {}
    if stored.post_id is None and brief.post_id is not None:
        quiet.update(site=brief.site or None, post_id=brief.post_id)
    if brief.content_rank > stored.content_rank and not changes:
        quiet.update(content_rank=brief.content_rank)
    if changes:
        conn.execute(b.update().where(b.c.id == brief_id).values(updated_at=now, **changes, **quiet))
        return "updated", brief_id
    if quiet:
        conn.execute(b.update().where(b.c.id == brief_id).values(**quiet))
    return "unchanged", brief_id


def withdraw(conn: sa.Connection, brief_id: int, reason: str, now: datetime | None = None) -> bool:
    """Mark a brief withdrawn by its publisher; True when it was public until now."""
    b = schema.briefs
    result = conn.execute(b.update().where(b.c.id == brief_id, public_clause())
                          .values(withdrawn_at=now or utcnow(), withdrawn_reason=reason))
    return result.rowcount > 0


@dataclass(frozen=True)
class Sighting:
    """One source's view of a stored public brief: the source's key and URL for it."""

    key: str
    url: str
    published_at: datetime


def sighted_by(conn: sa.Connection, source: str, *, published_since: datetime) -> dict[str, Sighting]:
    """{key: sighting} of the public briefs `source` saw that were published since the given time."""
    b, s = schema.briefs, schema.sightings
    rows = conn.execute(
        sa.select(s.c.key, s.c.url, b.c.published_at).join(b, b.c.id == s.c.brief_id)
        .where(s.c.source == source, b.c.published_at >= published_since, public_clause())
    )
    return {r.key: Sighting(r.key, r.url, r.published_at) for r in rows}


def brief_of(conn: sa.Connection, source: str, key: str) -> int | None:
    """The id of the brief a source's item is a sighting of, if stored: by its key, else (a page
    linked under another spelling of its URL) by the key's canonical URL."""
    s = schema.sightings
    found = conn.execute(sa.select(s.c.brief_id).where(s.c.source == source, s.c.key == key)).scalar()
    if found is not None:
        return found
    return conn.execute(sa.select(s.c.brief_id).where(s.c.source == source, s.c.canonical_url == canonical_url(key))
                        .order_by(s.c.id).limit(1)).scalar()


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
    query = sa.select(b).where(public_clause()).order_by(b.c.published_at.desc(), b.c.id.desc())
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
        .where(b.c.language == language, b.c.first_seen_at > after, b.c.first_seen_at <= until, public_clause())
        .order_by(b.c.published_at, b.c.id)
    )
    return [from_row(r) for r in rows]


def countries_in(conn: sa.Connection, language: str) -> list[str]:
    """Every country slug that has at least one brief in `language`."""
    rows = conn.execute(sa.select(schema.briefs.c.countries).where(schema.briefs.c.language == language,
                                                                   public_clause()))
    return sorted({c for (cs,) in rows for c in (cs or ())})


def count(conn: sa.Connection) -> int:
    """How many public briefs the store holds."""
    return conn.execute(sa.select(sa.func.count()).select_from(schema.briefs).where(public_clause())).scalar_one()


def in_language(conn: sa.Connection, language: str) -> list[Brief]:
    """Every brief of a language, withdrawn ones too (feeds show those as tombstones), in the
    order the feed archive pages them: stored order (one time per collect), then published time."""
    b = schema.briefs
    rows = conn.execute(sa.select(b).where(b.c.language == language)
                        .order_by(b.c.first_seen_at, b.c.published_at, b.c.id))
    return [from_row(r) for r in rows]
