"""Atom 1.0 (RFC 4287) documents from briefs, built with feedgen. Pure: data in, bytes out.

Every value is re-sanitised here, whatever the store holds: text loses markup and the
characters XML forbids, HTML goes through the allow-list again, every URL is absolute.
A document's `updated` is its newest entry's (or tombstone's), never "now", so rebuilding
unchanged briefs gives identical bytes (and an unchanged ETag).

A withdrawn brief is an RFC 6721 `at:deleted-entry` tombstone naming the entry id it had,
so feed readers that understand it remove the entry they hold.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timezone

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from newsletter import __version__
from newsletter.briefs import Brief, is_public
from newsletter.config import Config
from newsletter.countries import Countries
from newsletter.excerpt import excerpt
from newsletter.feeds.plan import Document
from newsletter.feeds.words import join_names, words
from newsletter.sanitize import absolute_url, clean_html, clean_text, xml_safe

ATOM_TYPE = "application/atom+xml"
HISTORY_NS = "http://purl.org/syndication/history/1.0"
TOMBSTONES_NS = "http://purl.org/atompub/tombstones/1.0"
# The summary, and the analysis shown in the content: whole sentences up to this length.
EXCERPT_CHARS = 600
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Site:
    """What every document of one build shares: the publication and where feeds are served."""

    config: Config
    countries: Countries

    def feed_url(self, path: str) -> str:
        return f"{self.config.publication.public_url.rstrip('/')}/feeds/{path}"

    def home(self, language: str) -> str:
        """The publisher's site in `language`: its first source in that language, else site_url."""
        for source in self.config.sources:
            if source.language == language:
                return source.url
        return self.config.publication.site_url

    @property
    def icon(self) -> str:
        pub = self.config.publication
        return self.config.feed.icon_url or pub.logo_url or absolute_url("/favicon.ico", pub.site_url) or pub.site_url


class _ArchiveMark(BaseExtension):
    """RFC 5005 `<fh:archive/>`: this document is an archive page whose entries do not change."""

    def extend_ns(self) -> dict[str, str]:
        return {"fh": HISTORY_NS}

    def extend_atom(self, feed: etree._Element) -> etree._Element:
        etree.SubElement(feed, f"{{{HISTORY_NS}}}archive")
        return feed


class _Tombstones(BaseExtension):
    """RFC 6721 `<at:deleted-entry ref when>` for each withdrawn brief of the document."""

    def __init__(self) -> None:
        self.withdrawn: list[tuple[str, datetime, str]] = []  # (entry id, when, original URL)

    def extend_ns(self) -> dict[str, str]:
        return {"at": TOMBSTONES_NS}

    def extend_atom(self, feed: etree._Element) -> etree._Element:
        for ref, when, url in self.withdrawn:
            tombstone = etree.SubElement(feed, f"{{{TOMBSTONES_NS}}}deleted-entry",
                                         ref=ref, when=when.isoformat())
            etree.SubElement(tombstone, "{http://www.w3.org/2005/Atom}link", href=url, rel="alternate")
        return feed


class _Entry(FeedEntry):
    """A feedgen entry whose links keep their attributes.

    feedgen 1.0 writes an entry's links with `href` only (it reads rel, type and hreflang
    from the new element instead of from the link's data); restore them from the data.
    """

    def atom_entry(self, extensions: bool = True) -> etree._Element:
        element = super().atom_entry(extensions)
        for data, link in zip(self.link(), element.iterfind("{http://www.w3.org/2005/Atom}link")):
            for name in ("rel", "type", "hreflang", "title", "length"):
                if data.get(name):
                    link.set(name, data[name])
        return element


def entry_updated(brief: Brief) -> datetime:
    """The source's modified time, or when the store saw the brief change if the source never said.

    WordPress moves its modified time on an edit; RSS items and plain pages do not, and
    their edits would otherwise never reach readers as updates.
    """
    updated = max(brief.modified_at, brief.published_at)
    seen, changed = brief.first_seen_at, brief.updated_at
    if seen and changed and changed > seen and brief.modified_at <= seen:
        updated = max(updated, changed)
    return updated.replace(microsecond=0)


def original_url(brief: Brief, site: Site) -> str:
    """The brief's page on the publisher's site; the site itself when the stored URL is unusable."""
    return absolute_url(xml_safe(brief.url), site.config.publication.site_url) or site.home(brief.language)


def analysis_excerpt(brief: Brief, url: str) -> str:
    """Whole sentences of the analysis, plain text; empty when the brief has no analysis."""
    return excerpt(clean_html(brief.analysis, url), EXCERPT_CHARS)[0]


def summary(brief: Brief, site: Site, url: str, analysis: str) -> str:
    """The analysis excerpt, else the lede's, then the attribution CC BY-NC asks for: plain text.

    Readers that show or mail only the summary (rss2email's text mode) still name the
    authors, the publisher, the licence and the original, and say this is an excerpt.
    """
    pub = site.config.publication
    w = words(brief.language)
    publisher = clean_text(pub.name)
    authors = [a for a in (clean_text(a) for a in brief.authors) if a]
    byline = (w.byline.format(authors=join_names(authors, brief.language), publisher=publisher) if authors
              else w.byline_publisher_only.format(publisher=publisher))
    credit = w.summary_credit.format(byline=byline, url=url, publisher=publisher, licence=clean_text(pub.licence),
                                     licence_url=pub.licence_url)
    text = analysis or excerpt(clean_html(brief.lede, url), EXCERPT_CHARS)[0]
    return f"{text}\n\n{credit}" if text else credit


def content(brief: Brief, site: Site, url: str, analysis: str) -> str:
    """The entry's HTML: the excerpt with the attribution CC BY-NC asks for around it.

    Byline with the authors and the publisher, a link to the original at the top and at the
    bottom, the licence with its URL, and words saying this is an excerpt.
    """
    pub = site.config.publication
    w = words(brief.language)
    esc = html.escape
    authors = [a for a in (clean_text(a) for a in brief.authors) if a]
    publisher = esc(clean_text(pub.name))
    title = esc(clean_text(brief.title) or url)
    byline = (
        w.byline.format(authors=esc(join_names(authors, brief.language)), publisher=publisher)
        if authors
        else w.byline_publisher_only.format(publisher=publisher)
    )
    parts = [
        f"<p><em>{w.excerpt_notice.format(url=esc(url), title=title, publisher=publisher)}</em></p>",
        f"<p>{byline}</p>",
    ]
    if brief.image_url:
        parts.append(f'<p><img src="{esc(brief.image_url)}" alt=""></p>')
    parts.append(brief.lede)
    if analysis:
        parts.append(f"<h2>{w.analysis_heading.format(publisher=publisher)}</h2>")
        parts.extend(f"<p>{esc(paragraph)}</p>" for paragraph in analysis.split("\n\n"))
    parts.append(f"<p>{w.read_original.format(url=esc(url), publisher=publisher)}</p>")
    credit = esc(join_names(authors, brief.language)) if authors else publisher
    parts.append(
        "<p><small>"
        + w.licence_notice.format(
            authors=credit, publisher=publisher, licence_url=esc(pub.licence_url), licence=esc(pub.licence)
        )
        + "</small></p>"
    )
    # The lede came from the store: sanitise the whole again so nothing stored earlier slips through.
    return xml_safe(clean_html("\n".join(parts), url))


def entry(brief: Brief, site: Site) -> FeedEntry:
    language = brief.language
    url = original_url(brief, site)
    analysis = analysis_excerpt(brief, url)
    item = _Entry()
    item.id(xml_safe(brief.guid))
    item.title(clean_text(brief.title) or url)
    item.updated(entry_updated(brief))
    item.published(brief.published_at.replace(microsecond=0))
    for name in (clean_text(a) for a in brief.authors):
        if name:
            item.author(name=name)
    item.link(href=url, rel="alternate", type="text/html", hreflang=language)
    categories = [{"term": slug, "label": site.countries.name(slug, language)} for slug in brief.countries]
    for tag in (clean_text(t) for t in brief.tags):
        # Countries often come mixed into the tags: each is listed once, as a country.
        if tag and site.countries.match(tag) not in brief.countries:
            categories.append({"term": tag})
    if categories:
        item.category(categories)
    item.summary(xml_safe(summary(brief, site, url, analysis)))
    item.content(content(brief, site, url, analysis), type="html")
    return item


def render(document: Document, entries: dict[str, FeedEntry], site: Site, *, hub: str = "") -> bytes:
    """One Atom document. `entries` caches built entries by guid across the documents of a build."""
    pub = site.config.publication
    feed = document.feed
    w = words(feed.language)
    publisher = clean_text(pub.name)
    if feed.country:
        country = site.countries.name(feed.country, feed.language)
        title = w.country_title.format(publisher=publisher, country=country)
        subtitle = w.country_subtitle.format(publisher=publisher, country=country)
    else:
        title = w.title.format(publisher=publisher)
        subtitle = w.subtitle.format(publisher=publisher)
    gen = FeedGenerator()
    if document.archive_page is not None:
        gen.register_extension("fh", _ArchiveMark, atom=True, rss=False)
        title = w.archive_title.format(title=title, page=document.archive_page)
    withdrawn = [b for b in document.briefs if not is_public(b)]
    if withdrawn:
        gen.register_extension("at", _Tombstones, atom=True, rss=False)
        gen.at.withdrawn = [(xml_safe(b.guid), b.withdrawn_at.replace(microsecond=0), original_url(b, site))
                            for b in withdrawn]
    # All documents of a feed are one logical feed (RFC 5005), so they share its id.
    gen.id(site.feed_url(feed.path))
    gen.title(title)
    gen.subtitle(subtitle)
    gen.language(feed.language)
    gen.author(name=publisher, uri=pub.site_url)
    gen.rights(w.rights.format(publisher=publisher, licence=pub.licence, licence_url=pub.licence_url))
    gen.icon(site.icon)
    gen.generator("newsletter", version=__version__)
    gen.link(href=site.feed_url(document.path), rel="self", type=ATOM_TYPE)
    gen.link(href=site.home(feed.language), rel="alternate", type="text/html", hreflang=feed.language)
    gen.link(href=pub.licence_url, rel="license")
    if document.archive_page is not None:
        gen.link(href=site.feed_url(feed.path), rel="current", type=ATOM_TYPE)
    elif hub:
        gen.link(href=hub, rel="hub")
    if document.prev_archive:
        gen.link(href=site.feed_url(document.prev_archive), rel="prev-archive", type=ATOM_TYPE)
    if document.next_archive:
        gen.link(href=site.feed_url(document.next_archive), rel="next-archive", type=ATOM_TYPE)
    newest = max([_EPOCH, *(b.withdrawn_at.replace(microsecond=0) for b in withdrawn)])
    for brief in document.briefs:
        if not is_public(brief):
            continue
        if brief.guid not in entries:
            entries[brief.guid] = entry(brief, site)
        gen.add_entry(entries[brief.guid], order="append")
        newest = max(newest, entry_updated(brief))
    gen.updated(newest)
    return gen.atom_str(pretty=True, encoding="UTF-8")
