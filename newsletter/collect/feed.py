"""The `feed` source kind: one RSS 2.0 or Atom document, parsed with feedparser.

feedparser expands entities declared in a DOCTYPE (a "billion laughs" document grows
without bound), so a document that declares entities is refused before it is parsed.
A malformed document is an error unless feedparser's lenient parser still recovered
entries with a title and a link; those go through the same sanitiser as everything else.
"""

from __future__ import annotations

import calendar
import io
from datetime import datetime, timezone
from typing import Any

import feedparser

from newsletter.briefs import Brief
from newsletter.collect.extract import (
    authors_from, is_brief, refuse_entity_declarations, sort_terms, split_body,
)
from newsletter.collect.http import Fetcher
from newsletter.collect.source import Extraction, Harvest
from newsletter.errors import SourceError
from newsletter.sanitize import absolute_url, clean_text


def _time(struct: Any) -> datetime | None:
    # feedparser normalises every date it understands to a UTC struct_time.
    if not struct:
        return None
    return datetime.fromtimestamp(calendar.timegm(struct), tz=timezone.utc)


# Complaints about the HTTP envelope, not the document: the XML itself parsed fine.
_BENIGN = (feedparser.NonXMLContentType, feedparser.CharacterEncodingOverride)


def parse_feed(data: bytes, url: str, ext: Extraction, content_type: str = "application/xml") -> tuple[list[Brief], int]:
    """(briefs, entries that are not briefs) of an RSS or Atom document."""
    refuse_entity_declarations(data, url)
    parsed = feedparser.parse(io.BytesIO(data), sanitize_html=False, resolve_relative_uris=False,
                              response_headers={"content-location": url, "content-type": content_type})
    malformed = parsed.bozo and not isinstance(parsed.get("bozo_exception"), _BENIGN)
    if not parsed.entries and (malformed or not parsed.version):
        reason = parsed.get("bozo_exception") or "no RSS or Atom elements"
        raise SourceError(f"{url}: not a readable RSS or Atom feed: {_describe(reason)}")
    briefs: list[Brief] = []
    skipped = 0
    recovered = 0
    for entry in parsed.entries:
        recovered += bool(entry.get("link") and entry.get("title"))
        brief = brief_from_entry(entry, url, ext)
        if brief is None:
            skipped += 1
        else:
            briefs.append(brief)
    if malformed and not recovered:
        raise SourceError(f"{url}: malformed feed and no entry could be recovered: {_describe(parsed.bozo_exception)}")
    return briefs, skipped


def _describe(exc: Any) -> str:
    return " ".join(str(exc).split())[:200]


def brief_from_entry(entry: Any, feed_url: str, ext: Extraction) -> Brief | None:
    link = absolute_url(entry.get("link") or "", feed_url)
    title = clean_text(entry.get("title") or "")
    # dict.get: FeedParserDict.get("updated_parsed") falls back to the published time (with a warning).
    updated = _time(dict.get(entry, "updated_parsed"))
    published = _time(dict.get(entry, "published_parsed")) or updated
    if not link or not title or published is None:
        return None
    modified = updated or published
    bylines = [a.get("name", "") for a in entry.get("authors") or [] if isinstance(a, dict)]
    if not any(bylines) and entry.get("author"):
        bylines = [entry["author"]]
    countries, tags = sort_terms((t.get("term") or "" for t in entry.get("tags") or []), ext.countries)
    if not is_brief(link, tags):
        return None
    contents = entry.get("content") or []
    html = contents[0].get("value", "") if contents else entry.get("summary", "")
    body = split_body(html, link, ext.rules, article_url=link)
    return Brief(
        source=ext.source.name,
        key=entry.get("id") or link,
        url=link,
        title=title,
        published_at=published,
        modified_at=max(modified, published),
        language=ext.source.language,
        authors=authors_from(bylines),
        countries=countries,
        tags=tags,
        lede=body.lede,
        analysis=body.analysis,
        image_url=_image(entry, link) or body.image_url,
    )


def _image(entry: Any, base: str) -> str | None:
    for group in ("media_content", "media_thumbnail"):
        for media in entry.get(group) or []:
            if media.get("url") and media.get("medium", "image") == "image":
                return absolute_url(media["url"], base)
    for enclosure in entry.get("enclosures") or []:
        if str(enclosure.get("type", "")).startswith("image/") and enclosure.get("href"):
            return absolute_url(enclosure["href"], base)
    return None


class Feed:
    def __init__(self, ext: Extraction) -> None:
        self.ext = ext

    def harvest(self, fetcher: Fetcher, cursor: str | None) -> Harvest:
        url = self.ext.source.url
        response = fetcher.get(url, accept="application/atom+xml, application/rss+xml, application/xml;q=0.9, */*;q=0.5")
        if response.not_modified:
            return Harvest()
        briefs, skipped = parse_feed(response.body, response.url, self.ext,
                                     response.headers.get("Content-Type", "application/xml"))
        return Harvest(briefs=briefs[: self.ext.source.max_items], skipped=skipped)
