"""What the public pages show, read from the store: each edition's past mailings with their
briefs' titles, and every feed with its number of briefs and last update.

Nothing here is personal: a mailing is its subject, date and briefs' titles. A brief that was
withdrawn at its source is left out everywhere, even from mailings that carried it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from newsletter import briefs
from newsletter.config import Config, EditionConfig
from newsletter.countries import Countries
from newsletter.feeds.build import languages as feed_languages
from newsletter.feeds.atom import entry_updated
from newsletter.feeds.plan import Feed, usable_slug
from newsletter.feeds.words import words as feed_words
from newsletter.sanitize import clean_text
from newsletter.states import MailingStatus
from newsletter.store import schema

PAGE_SIZE = 25
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _sent() -> sa.ColumnElement[bool]:
    """Mailings that went out: rendered, started and not cancelled."""
    m = schema.mailings
    return sa.and_(m.c.status != MailingStatus.CANCELLED, m.c.html.is_not(None), m.c.started_at.is_not(None))


@dataclass(frozen=True)
class BriefLink:
    title: str
    url: str


@dataclass(frozen=True)
class MailingSummary:
    id: int
    edition: str
    subject: str
    sent_at: datetime
    day: date  # in the edition's time zone: the date readers saw on it
    briefs: tuple[BriefLink, ...]


@dataclass(frozen=True)
class ArchivePage:
    mailings: tuple[MailingSummary, ...]
    page: int
    pages: int
    total: int


def _summaries(conn: sa.Connection, edition: EditionConfig, rows: list[sa.Row]) -> tuple[MailingSummary, ...]:
    ids = sorted({i for r in rows for i in (r.brief_ids or ())})
    b = schema.briefs
    found = {
        r.id: BriefLink(clean_text(r.title), r.url)
        for r in conn.execute(sa.select(b.c.id, b.c.title, b.c.url).where(b.c.id.in_(ids), briefs.public_clause()))
    } if ids else {}
    zone = ZoneInfo(edition.timezone)
    return tuple(
        MailingSummary(r.id, r.edition, clean_text(r.subject), r.started_at, r.started_at.astimezone(zone).date(),
                       tuple(found[i] for i in (r.brief_ids or ()) if i in found))
        for r in rows
    )


def archive_page(conn: sa.Connection, edition: EditionConfig, page: int) -> ArchivePage:
    """Page `page` (from 1) of the edition's sent mailings, newest first, PAGE_SIZE a page."""
    m = schema.mailings
    where = sa.and_(m.c.edition == edition.name, _sent())
    total = conn.execute(sa.select(sa.func.count()).select_from(m).where(where)).scalar_one()
    pages = max(1, -(-total // PAGE_SIZE))
    rows = conn.execute(
        sa.select(m.c.id, m.c.edition, m.c.subject, m.c.started_at, m.c.brief_ids).where(where)
        .order_by(m.c.started_at.desc(), m.c.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    return ArchivePage(_summaries(conn, edition, rows), page, pages, total)


def latest(conn: sa.Connection, edition: EditionConfig) -> MailingSummary | None:
    found = archive_page(conn, edition, 1).mailings
    return found[0] if found else None


@dataclass(frozen=True)
class FeedSummary:
    language: str
    country: str | None
    path: str  # under /feeds/
    title: str
    briefs: int
    updated: datetime


def feed_summaries(config: Config, conn: sa.Connection) -> list[FeedSummary]:
    """Every feed `newsletter feed` writes (one per language, one per country in it), language
    feeds first, countries by name; only feeds with briefs exist."""
    countries = Countries.from_config(config)
    publisher = clean_text(config.publication.name)
    b = schema.briefs
    rows = conn.execute(sa.select(b).where(briefs.public_clause()))
    counts: dict[Feed, list] = {}
    for row in rows:
        brief = briefs.from_row(row)
        updated = entry_updated(brief)
        for feed in [Feed(brief.language), *(Feed(brief.language, c) for c in brief.countries if usable_slug(c))]:
            seen = counts.setdefault(feed, [0, EPOCH])
            seen[0] += 1
            seen[1] = max(seen[1], updated)
    summaries = []
    for language in feed_languages(config):
        w = feed_words(language)
        for feed, (count, updated) in counts.items():
            if feed.language != language:
                continue
            if feed.country is None:
                title = w.title.format(publisher=publisher)
            else:
                title = w.country_title.format(publisher=publisher, country=countries.name(feed.country, language))
            summaries.append(FeedSummary(language, feed.country, feed.path, title, count, updated))
    return sorted(summaries, key=lambda f: (feed_languages(config).index(f.language), f.country is not None,
                                            f.title.casefold()))


@dataclass(frozen=True)
class StoreState:
    signature: tuple  # changes whenever a public page would
    changed_at: datetime  # when a mailing last went out or a brief was last stored, edited or withdrawn


def state(conn: sa.Connection) -> StoreState:
    """A cheap look at the store (two aggregate queries) that tells whether the public pages changed."""
    m, b = schema.mailings, schema.briefs
    mailings = conn.execute(sa.select(
        sa.func.max(m.c.id), sa.func.count(m.c.started_at), sa.func.count(m.c.html),
        sa.func.sum(sa.case((m.c.status == MailingStatus.CANCELLED, 1), else_=0)), sa.func.max(m.c.started_at),
    )).one()
    stored = conn.execute(sa.select(
        sa.func.count(), sa.func.max(b.c.updated_at), sa.func.count(b.c.withdrawn_at), sa.func.max(b.c.withdrawn_at),
    )).one()
    times = (mailings[4], stored[1], stored[3])
    return StoreState((*mailings, *stored), max((t for t in times if t is not None), default=EPOCH))
