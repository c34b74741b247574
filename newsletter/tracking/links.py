"""Tracked links: every http(s) link of a rendered mailing points to `{public_url}/r/{token}`.

Rewriting is a pure pass over the rendered HTML and text, done once per distinct copy when a
mailing is created; the numbered links are stored with the mailing (`mailing_links`), so the
redirect answers only links that were in it. Personal links (unsubscribe, preferences) are
placeholders when this runs and are never touched; `mailto:` links are left alone too.
"""

from __future__ import annotations

import html as html_module
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

import sqlalchemy as sa

from newsletter.briefs import Brief
from newsletter.config import Config
from newsletter.digest.render import donate_link
from newsletter.sanitize import absolute_url, clean_html
from newsletter.store import schema
from newsletter.tracking import tokens

KINDS = ("original", "donate", "archive", "other")
_HREF = re.compile(r'(\shref=")([^"]*)(")')
_TEXT_URL = re.compile(r"https?://[^\s<>\"']+")
# Sentence punctuation after a URL in running text is not part of it.
_TRAILING = ".,;:!?)]}'"
_LEDE_HREF = re.compile(r'href="([^"]+)"')


@dataclass(frozen=True)
class Link:
    no: int
    url: str
    kind: str  # original | donate | archive | other
    brief_id: int | None


class LinkBook:
    """A mailing's links, numbered as its copies are rewritten: one number per URL for all copies."""

    def __init__(self, key: bytes, public_url: str, mailing_id: int, *, briefs_by_url: Mapping[str, int],
                 mentioned_by: Mapping[str, int], donate_url: str, archive_url: str) -> None:
        self._key = key
        self._public_url = public_url.rstrip("/")
        self.mailing_id = mailing_id
        self._briefs_by_url = dict(briefs_by_url)
        self._mentioned_by = dict(mentioned_by)
        self._donate_url = donate_url
        self._archive_url = archive_url
        self._by_url: dict[str, Link] = {}

    @classmethod
    def for_mailing(cls, config: Config, mailing_id: int, briefs: Iterable[Brief]) -> "LinkBook":
        pub = config.publication
        originals: dict[str, int] = {}
        mentioned: dict[str, int] = {}
        for brief in briefs:
            if brief.id is None:
                continue
            url = absolute_url(brief.url, pub.site_url) or pub.site_url
            originals.setdefault(url, brief.id)
            for href in _LEDE_HREF.findall(clean_html(brief.lede, url)):
                mentioned.setdefault(html_module.unescape(href), brief.id)
        public_url = pub.public_url.rstrip("/")
        return cls(config.secret_key(), public_url, mailing_id, briefs_by_url=originals, mentioned_by=mentioned,
                   donate_url=donate_link(pub.donate_url, pub.donate_params),
                   archive_url=f"{public_url}/archive/{mailing_id}")

    @property
    def links(self) -> list[Link]:
        return list(self._by_url.values())

    def tracked(self, url: str) -> str:
        """The `/r/` URL standing for `url` (numbered the first time it is seen)."""
        link = self._by_url.get(url)
        if link is None:
            if len(self._by_url) >= tokens.MAX_LINKS:
                return url
            link = Link(len(self._by_url) + 1, url, *self._classify(url))
            self._by_url[url] = link
        return f"{self._public_url}/r/{tokens.make(self._key, self.mailing_id, link.no)}"

    def _classify(self, url: str) -> tuple[str, int | None]:
        if url in self._briefs_by_url:
            return "original", self._briefs_by_url[url]
        if self._donate_url and url == self._donate_url:
            return "donate", None
        if url == self._archive_url:
            return "archive", None
        return "other", self._mentioned_by.get(url)


def _trackable(url: str) -> bool:
    return url.startswith(("https://", "http://"))


def rewrite(html: str, text: str, book: LinkBook) -> tuple[str, str]:
    """The HTML and text with every http(s) link pointing through `book`'s `/r/` URLs."""

    def href(match: re.Match[str]) -> str:
        url = html_module.unescape(match.group(2))
        if not _trackable(url):
            return match.group(0)
        return match.group(1) + html_module.escape(book.tracked(url)) + match.group(3)

    def bare(match: re.Match[str]) -> str:
        found = match.group(0)
        url = found.rstrip(_TRAILING)
        return book.tracked(url) + found[len(url):]

    return _HREF.sub(href, html), _TEXT_URL.sub(bare, text)


def open_pixel(html: str, key: bytes, public_url: str, mailing_id: int) -> str:
    """The HTML with a 1x1 image at the end of its body, counted per mailing at `/o/{token}`."""
    src = f"{public_url.rstrip('/')}/o/{tokens.make(key, mailing_id, tokens.OPEN)}"
    img = (f'<img src="{src}" width="1" height="1" alt="" '
           'style="display:block;width:1px;height:1px;border:0;overflow:hidden;" />')
    at = html.rfind("</body>")
    return html[:at] + img + html[at:] if at >= 0 else html + img


def save(conn: sa.Connection, book: LinkBook) -> int:
    """Store the book's links with its mailing; returns how many."""
    rows = [{"mailing_id": book.mailing_id, "link_no": link.no, "url": link.url, "kind": link.kind,
             "brief_id": link.brief_id} for link in book.links]
    if rows:
        conn.execute(schema.mailing_links.insert(), rows)
    return len(rows)


def find(conn: sa.Connection, mailing_id: int, link_no: int) -> Link | None:
    """The stored link, or None when that mailing has no such link."""
    ml = schema.mailing_links
    row = conn.execute(sa.select(ml).where(ml.c.mailing_id == mailing_id, ml.c.link_no == link_no)).first()
    return Link(row.link_no, row.url, row.kind, row.brief_id) if row else None


def untrack(html: str, public_url: str, key: bytes, links: Mapping[int, str], mailing_id: int) -> str:
    """The HTML with its `/r/` links back to where they lead and no open pixel (the web copy is not counted)."""
    base = re.escape(public_url.rstrip("/"))
    html = re.sub(r'<img src="' + base + r'/o/[A-Za-z0-9_-]+"[^>]*>', "", html)
    prefix = base + "/r/"

    def back(match: re.Match[str]) -> str:
        try:
            found_mailing, link_no = tokens.read(key, match.group(1))
        except tokens.TrackingTokenError:
            return match.group(0)
        url = links.get(link_no) if found_mailing == mailing_id else None
        return html_module.escape(url) if url else match.group(0)

    return re.sub(prefix + r"([A-Za-z0-9_-]+)", back, html)
