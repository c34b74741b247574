"""`/`: the newsletter's home: what each edition is (title, language, schedule in words) and its
latest mailing, the sign-up form with its choices, and the feeds. In the visitor's language
(Accept-Language, or `?lang=`), with links to the other languages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from newsletter.config import Config, EditionConfig
from newsletter.digest.i18n import long_date
from newsletter.sanitize import clean_text
from newsletter.subscribers.profile import Vocabulary
from newsletter.web import catalogue, choices
from newsletter.web.public import Alternate, Public, language_feeds
from newsletter.web.schedule import in_words


@dataclass(frozen=True)
class ListedMailing:
    """A mailing as a listing shows it, its date worded in the page's language."""

    id: int
    subject: str
    day: date
    date_text: str
    briefs: tuple[catalogue.BriefLink, ...]


def listed(summary: catalogue.MailingSummary | None, lang: str) -> ListedMailing | None:
    if summary is None:
        return None
    return ListedMailing(summary.id, summary.subject, summary.day, long_date(summary.day, lang), summary.briefs)


@dataclass(frozen=True)
class EditionView:
    name: str
    title: str
    language_name: str
    schedule: str
    feed_url: str
    latest: ListedMailing | None


def edition_title(edition: EditionConfig) -> str:
    return clean_text(edition.title) or edition.name


def archive_feed(public: Public, edition: EditionConfig, lang: str) -> Alternate:
    words = public.messages.words(lang)
    title = words["archive_feed_title"].format(edition=edition_title(edition), publication=public.config.publication.name)
    return Alternate(title, public.url(f"/archive/{edition.name}.atom"))


def in_page_language_first(config: Config, lang: str) -> list[EditionConfig]:
    return sorted(config.editions, key=lambda e: e.language != lang)


def routes(public: Public) -> list[BaseRoute]:
    config = public.config
    vocabulary = Vocabulary(config)

    def build(lang: str) -> str:
        words = public.messages.words(lang)
        names = {code: public.messages.words(code)["language_name"] for code in public.messages.languages}
        editions = in_page_language_first(config, lang)
        chosen = lang if lang in vocabulary.languages else vocabulary.default_language
        with public.engine.connect() as conn:
            views = [
                EditionView(e.name, edition_title(e), names.get(e.language, e.language),
                            in_words(e.schedule, e.timezone, lang), public.url(f"/archive/{e.name}.atom"),
                            listed(catalogue.latest(conn, e), lang))
                for e in editions
            ]
            countries = choices.countries(config, conn, vocabulary, lang)
        feeds = [{"title": a.title, "url": a.href} for a in language_feeds(config, lang)]
        alternates = [*language_feeds(config, lang), *(archive_feed(public, e, lang) for e in editions
                                                       if e.language == lang)]
        return public.render(
            "home.html", lang, words["home_title"].format(publication=config.publication.name),
            alternates=alternates, editions=views, feeds=feeds, email="", name="", error="",
            choice_languages=choices.languages(config, public.messages, vocabulary, lang), countries=countries,
            chosen_language=chosen, chosen_editions=[], chosen_countries=[],
        )

    async def home(request: Request) -> Response:
        lang = public.lang(request)
        return await public.page(request, ("home", lang), lambda: build(lang))

    return [Route("/", home, methods=["GET"])]
