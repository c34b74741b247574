"""`/archive/EDITION.atom`: an edition's past mailings as an Atom 1.0 (RFC 4287) feed. Pure: data in,
bytes out.

An entry is one mailing: its subject, when it went out, its web copy as the link, and its
briefs' titles (linking to the originals) as the content. Its id is the web copy's URL,
which never changes. The feed's `updated` is its newest mailing's, so the bytes (and the
ETag) only change when a mailing goes out or a brief leaves.
"""

from __future__ import annotations

import html
from typing import Sequence

from feedgen.feed import FeedGenerator

from newsletter import __version__
from newsletter.config import Config, EditionConfig
from newsletter.sanitize import absolute_url, clean_text, xml_safe
from newsletter.web.catalogue import EPOCH, MailingSummary

ATOM_TYPE = "application/atom+xml"


def render(config: Config, edition: EditionConfig, mailings: Sequence[MailingSummary], *, title: str,
           subtitle: str, read_more: str) -> bytes:
    pub = config.publication
    base = pub.public_url.rstrip("/")
    publisher = clean_text(pub.name)
    self_url = f"{base}/archive/{edition.name}.atom"
    gen = FeedGenerator()
    gen.id(self_url)
    gen.title(xml_safe(clean_text(title)))
    gen.subtitle(xml_safe(clean_text(subtitle)))
    gen.language(edition.language)
    gen.author(name=publisher, uri=pub.site_url)
    gen.rights(f"© {publisher}")
    gen.generator("newsletter", version=__version__)
    gen.link(href=self_url, rel="self", type=ATOM_TYPE)
    gen.link(href=f"{base}/archive/{edition.name}/", rel="alternate", type="text/html")
    newest = EPOCH
    for mailing in mailings:
        url = f"{base}/archive/{mailing.id}"
        entry = gen.add_entry(order="append")
        entry.id(url)
        entry.title(xml_safe(mailing.subject) or url)
        entry.link(href=url, rel="alternate", type="text/html")
        entry.published(mailing.sent_at)
        entry.updated(mailing.sent_at)
        items = "".join(
            f'<li><a href="{html.escape(absolute_url(b.url, pub.site_url) or pub.site_url)}">{html.escape(b.title)}</a></li>'
            for b in mailing.briefs
        )
        body = (f"<ul>{items}</ul>" if items else "") + f'<p><a href="{html.escape(url)}">{html.escape(read_more)}</a></p>'
        entry.content(xml_safe(body), type="html")
        newest = max(newest, mailing.sent_at)
    gen.updated(newest)
    return gen.atom_str(pretty=True, encoding="UTF-8")
