"""The `pages` source kind: a listing page that links to article pages, all HTML, parsed with lxml.

Article links come from `article_link_xpath` or, by default, from links on the listing's
own host whose last path segment is a hyphenated slug (how WordPress and most CMSs name
articles), outside tag, category, author, page and feed archives. Each article gives its
canonical URL (link rel=canonical, og:url), title (og:title, h1), authors (meta author,
JSON-LD, rel=author and byline links, "By A and B"), times (article:*_time, JSON-LD,
time[datetime]), image (og:image) and body (articleBody, .entry-content, article, main).
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator
from urllib.parse import urldefrag, urlsplit

from lxml import etree
from lxml import html as lxml_html

from newsletter.briefs import RANK_PAGE, Brief
from newsletter.collect.extract import (
    authors_from, dateline_authors, html_document, is_brief, parse_time, sort_terms, split_element,
)
from newsletter.collect.feed import GONE_STATUSES
from newsletter.collect.http import Fetcher, StatusError, short_url, status_reason
from newsletter.collect.source import Extraction, Harvest, Memory, Rejected
from newsletter.errors import SourceError
from newsletter.identity import post_id_of
from newsletter.sanitize import absolute_url, clean_text

_NOT_ARTICLES = re.compile(r"/(?:tag|tags|category|categories|categoria|etiqueta|author|autor|page|feed|"
                           r"wp-admin|wp-content|wp-json|wp-login\.php|search|cdn-cgi)(?:/|$)", re.IGNORECASE)
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+){2,}(?:\.html?)?$", re.IGNORECASE)
_BODY_XPATHS = (
    '//*[@itemprop="articleBody"]',
    '//*[contains(concat(" ", normalize-space(@class), " "), " entry-content ")]',
    '//*[contains(concat(" ", normalize-space(@class), " "), " post-content ")]',
    '//*[contains(concat(" ", normalize-space(@class), " "), " article-content ")]',
    "//article",
    "//main",
    "//body",
)
_ARTICLE_TYPES = {"Article", "NewsArticle", "BlogPosting", "ReportageNewsArticle", "AnalysisNewsArticle"}


def article_links(page: str, listing_url: str, xpath: str = "") -> list[str]:
    """Article URLs on a listing page, absolute, without fragments, each once, in page order."""
    try:
        doc = html_document(page)
    except ValueError as exc:
        raise SourceError(f"{exc}: {short_url(listing_url)}") from exc
    doc.make_links_absolute(listing_url, handle_failures="discard")
    if xpath:
        try:
            found = doc.xpath(xpath)
        except etree.XPathError as exc:
            raise SourceError(f"article_link_xpath {xpath!r}: not a valid XPath: {exc}") from exc
        hrefs = [f.get("href", "") if isinstance(f, etree._Element) else str(f) for f in found]
        hrefs = [absolute_url(h, listing_url) or "" for h in hrefs]
    else:
        host = urlsplit(listing_url).hostname
        listing_path = urlsplit(listing_url).path.rstrip("/")
        hrefs = []
        for a in doc.iter("a"):
            href = a.get("href", "")
            parts = urlsplit(href)
            path = parts.path.rstrip("/")
            last = path.rsplit("/", 1)[-1]
            if (parts.scheme in ("http", "https") and parts.hostname == host and path != listing_path
                    and not _NOT_ARTICLES.search(parts.path) and _SLUG.match(last)):
                hrefs.append(href)
    links: list[str] = []
    for href in hrefs:
        url = urldefrag(href)[0]
        if url and url not in links:
            links.append(url)
    return links


def _meta(doc: lxml_html.HtmlElement, *names: str) -> list[str]:
    values: list[str] = []
    for name in names:
        for element in doc.xpath(f'//meta[@property="{name}" or @name="{name}"]'):
            content = (element.get("content") or "").strip()
            if content:
                values.append(content)
    return values


def _json_ld(doc: lxml_html.HtmlElement) -> Iterator[dict[str, Any]]:
    """Article objects from the page's JSON-LD blocks (unreadable blocks are ignored)."""
    for script in doc.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text or "")
        except ValueError:
            continue
        stack = data if isinstance(data, list) else [data]
        while stack:
            item = stack.pop(0)
            if not isinstance(item, dict):
                continue
            stack.extend(item.get("@graph") or [])
            kinds = item.get("@type")
            kinds = set(kinds) if isinstance(kinds, list) else {kinds}
            if kinds & _ARTICLE_TYPES:
                yield item


def _ld_names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return _ld_names(value.get("name"))
    if isinstance(value, list):
        return [n for v in value for n in _ld_names(v)]
    return []


def parse_article(page: str, url: str, ext: Extraction) -> Brief | None:
    """A Brief from an article page, or None when the page is not a dated article with text.

    Whether it is a brief rather than a profile is the caller's question (`is_brief`).
    """
    try:
        doc = html_document(page)
    except ValueError:
        return None
    ld = list(_json_ld(doc))
    canonical = next(iter(doc.xpath('//link[@rel="canonical"]/@href')), None) or next(iter(_meta(doc, "og:url")), None)
    link = absolute_url(canonical or url, url) or url
    titles = _meta(doc, "og:title") + [" ".join(h.text_content().split()) for h in doc.iter("h1")]
    titles += [t for item in ld for t in _ld_names(item.get("headline"))]
    titles += [doc.findtext(".//title") or ""]
    title = next((clean_text(t) for t in titles if clean_text(t)), "")
    published = next(filter(None, map(parse_time, _meta(doc, "article:published_time")
                                      + [str(i.get("datePublished", "")) for i in ld]
                                      + doc.xpath("//time/@datetime"))), None)
    modified = next(filter(None, map(parse_time, _meta(doc, "article:modified_time", "og:updated_time")
                                     + [str(i.get("dateModified", "")) for i in ld])), None) or published
    if not title or published is None or modified is None:
        return None
    bylines = _meta(doc, "author") + [n for item in ld for n in _ld_names(item.get("author"))]
    bylines += [" ".join(a.text_content().split()) for a in doc.xpath('//a[@rel="author"]')]
    if not bylines:
        bylines = [" ".join(e.text_content().split()) for e in doc.xpath(
            '//*[contains(concat(" ", normalize-space(@class), " "), " byline ")]')]
    authors = authors_from(bylines)
    if not authors:
        for element in doc.xpath("//p|//div[not(*)]|//span"):
            authors = dateline_authors(element.text_content())
            if authors:
                break
    terms = _meta(doc, "article:tag", "article:section") + doc.xpath('//a[@rel="tag"]/text()')
    for item in ld:
        keywords = item.get("keywords")
        terms += keywords.split(",") if isinstance(keywords, str) else _ld_names(keywords)
    countries, tags = sort_terms(terms, ext.countries)
    body_root = next((found[0] for xp in _BODY_XPATHS if (found := doc.xpath(xp))), doc)
    for heading in list(body_root.iter("h1")):
        # The title is stored apart; in the body it would only repeat.
        heading.drop_tree()
    body = split_element(body_root, link, ext.rules, article_url=link)
    if not body.lede and not body.analysis:
        return None
    image = next((absolute_url(i, link) for i in _meta(doc, "og:image")), None) or body.image_url
    # WordPress pages carry <link rel="shortlink" href="https://site/?p=ID">: the post the API calls ID.
    wordpress = next(filter(None, map(post_id_of, doc.xpath('//link[@rel="shortlink"]/@href'))), None)
    return Brief(
        source=ext.source.name,
        key=link,
        url=link,
        title=title,
        published_at=published,
        modified_at=max(modified, published),
        language=ext.source.language,
        authors=authors,
        countries=countries,
        tags=tags,
        lede=body.lede,
        analysis=body.analysis,
        image_url=image,
        post_id=wordpress[1] if wordpress else None,
        site=wordpress[0] if wordpress else "",
        content_rank=RANK_PAGE,
    )


class Pages:
    def __init__(self, ext: Extraction) -> None:
        self.ext = ext

    def harvest(self, fetcher: Fetcher, memory: Memory) -> Harvest:
        listing_url = self.ext.source.listing_url
        listing = fetcher.get(listing_url, accept="text/html")
        if listing.not_modified:
            return Harvest()
        links = article_links(listing.text(), listing.url, self.ext.source.article_link_xpath)
        if not links:
            raise SourceError("no article links found on the listing page (is it rendered by script? set "
                              f"article_link_xpath): {short_url(listing_url)}")
        harvest = Harvest()
        parsed = unreadable = 0
        for url in links[: self.ext.source.max_items]:
            try:
                response = fetcher.get(url, accept="text/html")
            except StatusError as exc:
                # A dead link on the listing is the page's problem, not the source's; a stored
                # brief whose page is gone was withdrawn by its publisher.
                if exc.status not in GONE_STATUSES:
                    raise
                harvest.skipped += 1
                harvest.withdrawn[url] = f"the article page answers {status_reason(exc.status)}"
                continue
            if response.not_modified:
                harvest.not_modified += 1
                continue
            parsed += 1
            try:
                brief = parse_article(response.text(), response.url, self.ext)
            except (ValueError, TypeError, etree.LxmlError) as exc:
                harvest.rejected.append(Rejected(url, f"unreadable page: {' '.join(str(exc).split())[:160]}"))
                continue
            if brief is None:
                unreadable += 1
            elif is_brief(brief.url, brief.tags):
                harvest.briefs.append(brief)
            else:
                harvest.skipped += 1
        harvest.skipped += unreadable
        if parsed and unreadable == parsed:
            raise SourceError(f"none of the {parsed} article pages had a title, a date and text "
                              f"(rendered by script?): {short_url(listing_url)}")
        return harvest
