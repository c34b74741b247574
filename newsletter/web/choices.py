"""What a person may choose to receive, as the sign-up form and the preferences page offer it:
the newsletter languages, each with its editions, and the countries of interest named in the
page's language. Both pages render these with one template (`_choices.html`).

Ticking nothing means everything: every edition of the chosen language, every country.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import sqlalchemy as sa

from newsletter import briefs
from newsletter.config import Config
from newsletter.subscribers.profile import Vocabulary
from newsletter.web.i18n import Messages
from newsletter.web.schedule import in_words


@dataclass(frozen=True)
class EditionChoice:
    name: str
    label: str  # "Daily briefing (English)"
    schedule: str  # in the page's language: "every weekday at 07:00 Bogotá time"


@dataclass(frozen=True)
class LanguageChoice:
    code: str
    label: str  # the language's own name: "English", "Español"
    editions: tuple[EditionChoice, ...]


def languages(config: Config, messages: Messages, vocabulary: Vocabulary, page_language: str) -> list[LanguageChoice]:
    """Each newsletter language with its editions, in the order the config lists them."""
    names = {code: messages.words(code)["language_name"] for code in messages.languages}
    return [
        LanguageChoice(code, names.get(code, code), tuple(
            EditionChoice(e.name, f"{e.title or e.name} ({names.get(e.language, e.language)})",
                          in_words(e.schedule, e.timezone, page_language))
            for e in config.editions if e.language == code
        ))
        for code in vocabulary.languages
    ]


def countries(config: Config, conn: sa.Connection, vocabulary: Vocabulary, page_language: str,
              chosen: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(slug, name in the page's language) of every country a person may follow, by name: those the
    briefs are tagged with, those editions and the config name, and any already chosen."""
    slugs = {slug for language in vocabulary.languages for slug in briefs.countries_in(conn, language)}
    slugs |= {vocabulary.countries.match(c) or c for e in config.editions for c in e.countries}
    slugs |= set(config.collect.countries)
    slugs |= set(chosen)
    named = [(slug, vocabulary.countries.name(slug, page_language)) for slug in slugs]
    return sorted(named, key=lambda item: item[1].casefold())
