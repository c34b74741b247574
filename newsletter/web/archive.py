"""`/archive/{mailing_id}`: a mailing's "view in browser" page, the same HTML every subscriber got.

Not personalised: the greeting is neutral and the subscriber-only links (preferences,
unsubscribe) are left out, so the page can be shared and cached. A brief withdrawn at its
source since the mailing went out is taken out: the copy is rendered again from the briefs
that remain. A line at the top invites the reader to subscribe and links the edition's
archive, and the head carries feed autodiscovery links, as on every page of `serve`.
"""

from __future__ import annotations

import html
import re

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from newsletter import briefs
from newsletter.digest import render_mailing
from newsletter.digest.placeholders import web_copy
from newsletter.states import MailingStatus
from newsletter.store import schema
from newsletter.tracking.links import untrack
from newsletter.web.home import archive_feed, edition_title
from newsletter.web.public import Public, language_feeds

# The digest needs inline styles and remote images, nothing else: no script, no frames, no forms.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEAD_END = re.compile(r"</head\s*>", re.I)
_BODY_START = re.compile(r"<body\b[^>]*>", re.I)
# The invitation above the copy: inline styles, as the copy's own (the page allows no style sheet).
_INVITATION = (
    '<div role="complementary" style="font-family:Arial,Helvetica,sans-serif;font-size:15px;line-height:1.5;'
    'background:#ffffff;color:#1a1a1a;border-bottom:1px solid #cccccc;padding:12px 16px;text-align:center;">'
    '{message} <a href="{subscribe}" style="color:#0b4f8a;font-weight:bold;">{subscribe_text}</a>'
    ' · <a href="{archive}" style="color:#0b4f8a;">{archive_text}</a></div>'
)
# Beyond a database integer no mailing exists; the store would fail on the number itself.
MAX_ID = 2**31 - 1


def with_page_parts(copy: str, head: str, top: str) -> str:
    """`copy` with `head` added at the end of its head and `top` at the start of its body."""
    copy = _HEAD_END.sub(lambda m: head + m.group(0), copy, count=1)
    return _BODY_START.sub(lambda m: m.group(0) + top, copy, count=1)


def routes(public: Public) -> list[BaseRoute]:
    config = public.config
    editions = {e.name: e for e in config.editions}

    def build(mailing_id: int) -> str | None:
        m = schema.mailings
        with public.engine.connect() as conn:
            row = conn.execute(
                sa.select(m.c.html, m.c.language, m.c.edition, m.c.brief_ids, m.c.created_at)
                .where(m.c.id == mailing_id, m.c.status != MailingStatus.CANCELLED)
            ).first()
            if row is None or row.html is None:
                return None
            ids = list(row.brief_ids or ())
            live = set(conn.execute(
                sa.select(schema.briefs.c.id).where(schema.briefs.c.id.in_(ids), briefs.public_clause())
            ).scalars()) if ids else set()
            edition = editions.get(row.edition)
            rendered = row.html
            if len(live) < len(set(ids)) and edition is not None:
                if not live:
                    return None  # every brief it carried was withdrawn
                kept = [b for b in briefs.by_ids(conn, ids) if b.id in live]
                rendered = render_mailing(config, edition, kept, mailing_id=mailing_id, created_at=row.created_at).html
            ml = schema.mailing_links
            targets = dict(conn.execute(sa.select(ml.c.link_no, ml.c.url).where(ml.c.mailing_id == mailing_id)).all())
        # A visit to the archive is not a reader of the mailing clicking: its links lead straight on.
        rendered = untrack(rendered, config.publication.public_url, config.secret_key(), targets, mailing_id)
        lang = row.language if row.language in public.messages.languages else "en"
        words = public.messages.words(lang)
        feeds = [archive_feed(public, edition, lang)] if edition is not None else []
        feeds += language_feeds(config, row.language)
        head = "".join(f'<link rel="alternate" type="{f.type}" href="{html.escape(f.href)}" title="{html.escape(f.title)}">'
                       for f in feeds)
        archive_url = f"/archive/{edition.name}/?lang={lang}" if edition is not None else f"/archive/?lang={lang}"
        top = _INVITATION.format(
            message=html.escape(words["archive_copy_cta"].format(publication=config.publication.name)),
            subscribe=f"/?lang={lang}#subscribe", subscribe_text=html.escape(words["archive_cta_link"]),
            archive=html.escape(archive_url),
            archive_text=html.escape(words["archive_edition_title"].format(
                edition=edition_title(edition)) if edition is not None else words["archive_title"]),
        )
        return with_page_parts(web_copy(rendered, row.language), head, top)

    async def page(request: Request) -> Response:
        mailing_id = request.path_params["mailing_id"]
        if mailing_id > MAX_ID:
            return public.not_found(request)
        return await public.page(request, ("copy", mailing_id), lambda: build(mailing_id),
                                 headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    return [Route("/archive/{mailing_id:int}", page, methods=["GET", "HEAD"])]
