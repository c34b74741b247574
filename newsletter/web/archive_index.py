"""The archive's listings: `/archive/` (every edition's newest mailings), `/archive/EDITION/`
(one edition's, 25 a page with `?page=N`, the page `List-Archive` points to) and
`/archive/EDITION.atom` (the same as an Atom feed).

Each mailing shows its date, subject and briefs' titles and links to its web copy
(`/archive/N`, see `archive`). Never personalised, no tracking: the same bytes for everyone,
cached and revalidated like the feeds.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from newsletter.config import EditionConfig
from newsletter.web import archive_feed, catalogue
from newsletter.web.home import ListedMailing, archive_feed as archive_alternate, edition_title, \
    in_page_language_first, listed
from newsletter.web.public import Public, language_feeds
from newsletter.web.schedule import in_words

FEED_MEDIA_TYPE = "application/atom+xml; charset=utf-8"


@dataclass(frozen=True)
class EditionArchive:
    name: str
    title: str
    language: str
    language_name: str
    schedule: str
    feed_url: str
    page: catalogue.ArchivePage
    mailings: tuple[ListedMailing, ...]


def page_number(request: Request) -> int | None:
    """`?page=N` as a number from 1; None when it is not one."""
    text = request.query_params.get("page", "1")
    return int(text) if text.isdigit() and 0 < int(text) < 1_000_000 else None


def routes(public: Public) -> list[BaseRoute]:
    config = public.config
    editions = {e.name: e for e in config.editions}

    def view(edition: EditionConfig, page: catalogue.ArchivePage, lang: str) -> EditionArchive:
        names = {code: public.messages.words(code)["language_name"] for code in public.messages.languages}
        return EditionArchive(
            edition.name, edition_title(edition), edition.language, names.get(edition.language, edition.language),
            in_words(edition.schedule, edition.timezone, lang), public.url(f"/archive/{edition.name}.atom"), page,
            tuple(m for m in (listed(s, lang) for s in page.mailings) if m is not None),
        )

    def build_index(lang: str) -> str:
        shown = in_page_language_first(config, lang)
        with public.engine.connect() as conn:
            views = [view(e, catalogue.archive_page(conn, e, 1), lang) for e in shown]
        alternates = [*(archive_alternate(public, e, lang) for e in shown), *language_feeds(config, lang)]
        return public.render("archive.html", lang, public.messages.words(lang)["archive_title"],
                             alternates=alternates, editions=views)

    def build_edition(edition: EditionConfig, number: int, lang: str) -> str | None:
        with public.engine.connect() as conn:
            page = catalogue.archive_page(conn, edition, number)
        if number > page.pages:
            return None
        title = public.messages.words(lang)["archive_edition_title"].format(edition=edition_title(edition))
        alternates = [archive_alternate(public, edition, lang), *language_feeds(config, edition.language)]
        return public.render("archive.html", lang, title, alternates=alternates, editions=[view(edition, page, lang)])

    def build_feed(edition: EditionConfig) -> str:
        words = public.messages.words(edition.language)
        with public.engine.connect() as conn:
            page = catalogue.archive_page(conn, edition, 1)
        publication = config.publication.name
        return archive_feed.render(
            config, edition, page.mailings,
            title=words["archive_feed_title"].format(edition=edition_title(edition), publication=publication),
            subtitle=words["archive_feed_subtitle"].format(edition=edition_title(edition), publication=publication),
            read_more=words["read_newsletter"],
        ).decode("utf-8")

    async def index(request: Request) -> Response:
        lang = public.lang(request)
        return await public.page(request, ("archive", lang), lambda: build_index(lang))

    async def edition_page(request: Request) -> Response:
        edition = editions.get(request.path_params["edition"])
        number = page_number(request)
        if edition is None or number is None:
            return public.not_found(request)
        lang = public.lang(request)
        return await public.page(request, ("archive", edition.name, number, lang),
                                 lambda: build_edition(edition, number, lang))

    async def edition_without_slash(request: Request) -> Response:
        """`/archive/daily-en` leads to the edition's page; a name that is no edition is a 404 at
        once (the router would otherwise redirect any `/archive/<text>` to `/archive/<text>/`)."""
        edition = editions.get(request.path_params["edition"])
        if edition is None:
            return public.not_found(request)
        return RedirectResponse(f"/archive/{edition.name}/", status_code=308)

    async def feed(request: Request) -> Response:
        edition = editions.get(request.path_params["edition"])
        if edition is None:
            return public.not_found(request)
        return await public.page(request, ("archive.atom", edition.name), lambda: build_feed(edition),
                                 media_type=FEED_MEDIA_TYPE)

    return [
        Route("/archive/", index, methods=["GET"]),
        Route("/archive/{edition}.atom", feed, methods=["GET"]),
        Route("/archive/{edition}/", edition_page, methods=["GET"]),
        Route("/archive/{edition}", edition_without_slash, methods=["GET"]),
    ]
