"""Which documents a feed is made of: the subscription document and its RFC 5005 archive.

A feed (one language, or one language and one country) lists its briefs in archive order
(`briefs.in_language`: the collect that first stored them, then publication time, so the
briefs of a first collect are paged oldest published first and later ones follow) and cuts
that list into pages of `[feed].archive_size`. Only a full page becomes an archive document,
and briefs stored later always come after it, so the set of entries at an archive URL never
changes (RFC 5005 section 4): a reader that follows `prev-archive` until it meets a page it
has already read misses nothing. The subscription document carries the newest
`[feed].entries` briefs plus every brief not yet in a full page, so nothing falls between
it and the newest archive page. A feed with no more briefs than `[feed].entries` has no
archive at all.

A withdrawn brief keeps its place in this order; the documents show it as an RFC 6721
tombstone instead of an entry (see `atom.render`), so readers remove it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from newsletter.briefs import Brief

# Country slugs become path segments: anything else is left out of the file names.
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def usable_slug(slug: str) -> bool:
    return bool(_SLUG.match(slug))


@dataclass(frozen=True)
class Feed:
    """One logical feed: all briefs of a language, or those of one country in it."""

    language: str
    country: str | None = None

    @property
    def stem(self) -> str:
        return f"{self.language}/{self.country}" if self.country else self.language

    @property
    def path(self) -> str:
        """The subscription document, relative to the output folder (and to /feeds/)."""
        return f"{self.stem}.atom"

    def archive_path(self, page: int) -> str:
        return f"{self.stem}/archive/{page}.atom"


@dataclass(frozen=True)
class Document:
    feed: Feed
    path: str
    briefs: tuple[Brief, ...]  # newest first
    archive_page: int | None = None  # None for the subscription document
    prev_archive: str | None = None
    next_archive: str | None = None


def newest_first(items: Sequence[Brief]) -> tuple[Brief, ...]:
    return tuple(sorted(items, key=lambda b: (b.published_at, b.id or 0), reverse=True))


def plan(feed: Feed, items: Sequence[Brief], *, entries: int, archive_size: int) -> list[Document]:
    """The subscription document first, then the archive pages from the oldest; `items` in archive order."""
    stored_order = list(items)
    full_pages = len(stored_order) // archive_size if len(stored_order) > entries else 0
    archived = full_pages * archive_size
    newest = newest_first(stored_order)[:entries]
    unarchived = stored_order[archived:]
    current_ids = {b.id for b in newest}
    current = newest_first([*newest, *(b for b in unarchived if b.id not in current_ids)])
    documents = [
        Document(
            feed=feed,
            path=feed.path,
            briefs=current,
            prev_archive=feed.archive_path(full_pages) if full_pages else None,
        )
    ]
    for page in range(1, full_pages + 1):
        documents.append(
            Document(
                feed=feed,
                path=feed.archive_path(page),
                briefs=newest_first(stored_order[(page - 1) * archive_size: page * archive_size]),
                archive_page=page,
                prev_archive=feed.archive_path(page - 1) if page > 1 else None,
                next_archive=feed.archive_path(page + 1) if page < full_pages else None,
            )
        )
    return documents
