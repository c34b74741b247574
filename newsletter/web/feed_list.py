"""`/feeds/`: every feed a reader can follow, per language and per country, with its title, its
number of briefs and last update, and its address to copy into a feed reader; then each
edition's archive feed. The feed files themselves are served by `feeds` under the same path."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from newsletter.digest.i18n import short_date
from newsletter.feeds.build import languages as feed_languages
from newsletter.web import catalogue
from newsletter.web.home import archive_feed
from newsletter.web.public import Alternate, Public


@dataclass(frozen=True)
class FeedItem:
    title: str
    language: str
    stats: str
    url: str


@dataclass(frozen=True)
class LanguageGroup:
    code: str
    name: str
    language_feeds: tuple[FeedItem, ...]
    country_feeds: tuple[FeedItem, ...]


def routes(public: Public) -> list[BaseRoute]:
    config = public.config

    def archive_items(conn: sa.Connection, lang: str) -> list[FeedItem]:
        words = public.messages.words(lang)
        items = []
        for edition in config.editions:
            page = catalogue.archive_page(conn, edition, 1)
            stats = (words["archive_feed_stats"].format(count=page.total, date=short_date(page.mailings[0].day, lang))
                     if page.mailings else words["nothing_sent"])
            link = archive_feed(public, edition, edition.language)
            items.append(FeedItem(link.title, edition.language, stats, link.href))
        return items

    def build(lang: str) -> str:
        words = public.messages.words(lang)
        with public.engine.connect() as conn:
            summaries = catalogue.feed_summaries(config, conn)
            archives = archive_items(conn, lang)
        groups = []
        for code in feed_languages(config):
            items = [
                (f.country, FeedItem(f.title, f.language, (words["feed_stats_one"] if f.briefs == 1 else words["feed_stats"])
                                     .format(count=f.briefs, date=short_date(f.updated.date(), lang)),
                                     public.url(f"/feeds/{f.path}")))
                for f in summaries if f.language == code
            ]
            if items:
                name = public.messages.words(code)["language_name"] if code in public.messages.languages else code
                groups.append(LanguageGroup(code, name, tuple(i for c, i in items if c is None),
                                            tuple(i for c, i in items if c is not None)))
        alternates = [Alternate(i.title, i.url) for g in groups for i in g.language_feeds]
        alternates += [archive_feed(public, e, e.language) for e in config.editions]
        return public.render("feeds.html", lang, words["feeds_title"], alternates=alternates,
                             languages_shown=groups, archives=archives)

    async def page(request: Request) -> Response:
        lang = public.lang(request)
        return await public.page(request, ("feeds", lang), lambda: build(lang))

    return [Route("/feeds/", page, methods=["GET"])]
