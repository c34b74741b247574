"""The `feed` source kind: one RSS 2.0 or Atom document, parsed with feedparser.

feedparser expands entities declared in a DOCTYPE (a "billion laughs" document grows
without bound), so a document that declares entities is refused before it is parsed.
A malformed document is an error unless feedparser's lenient parser still recovered
entries with a title and a link; those go through the same sanitiser as everything else.
An entry without a title, a link or a date, or with unreadable text, is skipped with its reason.

Retractions: a recent brief newer than the document's oldest entry that is no longer in the
document was taken out by the publisher, not pushed out by newer entries; its URL is asked
for, and a 404 or 410 withdraws it.
"""

from __future__ import annotations

import calendar
import io
from datetime import datetime, timezone
from typing import Any

import feedparser

from lxml import etree

from newsletter.briefs import RANK_FEED_CONTENT, RANK_FEED_SUMMARY, Brief
from newsletter.collect.extract import (
    authors_from, is_brief, refuse_entity_declarations, sort_terms, split_body,
)
from newsletter.collect.http import Fetcher, StatusError, short_url, status_reason
from newsletter.collect.source import BadItem, Extraction, Harvest, Memory, Rejected
from newsletter.errors import SourceError
from newsletter.identity import post_id_of
from newsletter.sanitize import absolute_url, clean_text

# Article URLs answering these are withdrawn articles.
GONE_STATUSES = (404, 410)


def _time(struct: Any) -> datetime | None:
    # feedparser normalises every date it understands to a UTC struct_time.
    if not struct:
        return None
    return datetime.fromtimestamp(calendar.timegm(struct), tz=timezone.utc)


# Complaints about the HTTP envelope, not the document: the XML itself parsed fine.
_BENIGN = (feedparser.NonXMLContentType, feedparser.CharacterEncodingOverride)


def parse_feed(data: bytes, url: str, ext: Extraction, content_type: str = "application/xml") -> Harvest:
    """The briefs, entries that are not briefs and unreadable entries of an RSS or Atom document."""
    refuse_entity_declarations(data, short_url(url))
    parsed = feedparser.parse(io.BytesIO(data), sanitize_html=False, resolve_relative_uris=False,
                              response_headers={"content-location": url, "content-type": content_type})
    malformed = parsed.bozo and not isinstance(parsed.get("bozo_exception"), _BENIGN)
    if not parsed.entries and (malformed or not parsed.version):
        reason = parsed.get("bozo_exception") or "no RSS or Atom elements"
        raise SourceError(f"not a readable RSS or Atom feed ({_describe(reason)}): {short_url(url)}")
    harvest = Harvest()
    recovered = 0
    for entry in parsed.entries:
        recovered += bool(entry.get("link") and entry.get("title"))
        key = str(entry.get("id") or entry.get("link") or "?")
        try:
            brief = brief_from_entry(entry, url, ext)
        except BadItem as exc:
            harvest.rejected.append(Rejected(key, str(exc)))
            continue
        except (ValueError, TypeError, etree.LxmlError) as exc:
            harvest.rejected.append(Rejected(key, f"unreadable text: {_describe(exc)[:160]}"))
            continue
        if brief is None:
            harvest.skipped += 1
        else:
            harvest.briefs.append(brief)
    if malformed and not recovered:
        raise SourceError(f"malformed feed and no entry could be recovered ({_describe(parsed.bozo_exception)}): "
                          f"{short_url(url)}")
    return harvest


def _describe(exc: Any) -> str:
    return " ".join(str(exc).split())[:200]


def brief_from_entry(entry: Any, feed_url: str, ext: Extraction) -> Brief | None:
    """A Brief from one entry; None when it is not a brief (a profile); BadItem when it cannot be read."""
    link = absolute_url(entry.get("link") or "", feed_url)
    title = clean_text(entry.get("title") or "")
    # dict.get: FeedParserDict.get("updated_parsed") falls back to the published time (with a warning).
    updated = _time(dict.get(entry, "updated_parsed"))
    published = _time(dict.get(entry, "published_parsed")) or updated
    if not link:
        raise BadItem("no link")
    if not title:
        raise BadItem("no title")
    if published is None:
        raise BadItem("no date")
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
    key = entry.get("id") or link
    # WordPress feeds name a post by its `?p=ID` guid: the same post the REST API calls ID.
    wordpress = post_id_of(key)
    return Brief(
        source=ext.source.name,
        key=key,
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
        post_id=wordpress[1] if wordpress else None,
        site=wordpress[0] if wordpress else "",
        content_rank=RANK_FEED_CONTENT if contents else RANK_FEED_SUMMARY,
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

    def harvest(self, fetcher: Fetcher, memory: Memory) -> Harvest:
        url = self.ext.source.url
        response = fetcher.get(url, accept="application/atom+xml, application/rss+xml, application/xml;q=0.9, */*;q=0.5")
        if response.not_modified:
            return Harvest()
        harvest = parse_feed(response.body, response.url, self.ext,
                             response.headers.get("Content-Type", "application/xml"))
        present = {b.key for b in harvest.briefs}
        oldest = min((b.published_at for b in harvest.briefs), default=None)
        harvest.briefs = harvest.briefs[: self.ext.source.max_items]
        if oldest is not None:
            taken_out = [s for key, s in memory.recent.items() if key not in present and s.published_at > oldest]
            for sighting in taken_out:
                reason = article_gone(fetcher, sighting.url)
                if reason:
                    harvest.withdrawn[sighting.key] = reason
        return harvest


def article_gone(fetcher: Fetcher, url: str) -> str | None:
    """Why an article page is gone (it answers 404 or 410), or None when it is still there."""
    try:
        fetcher.get(url, accept="text/html")
    except StatusError as exc:
        if exc.status in GONE_STATUSES:
            return f"the article page answers {status_reason(exc.status)}"
        return None
    return None
