"""What a subscriber chose: language, editions and countries, checked against the config."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Iterable

from newsletter.config import Config
from newsletter.countries import Countries
from newsletter.errors import SubscriberError

STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")


@dataclass(frozen=True)
class Profile:
    name: str
    language: str
    editions: tuple[str, ...]  # empty: every edition in the language
    countries: tuple[str, ...]  # country slugs; empty: every country


class Vocabulary:
    """The languages, editions and countries a subscriber may choose, from the config."""

    def __init__(self, config: Config) -> None:
        self.editions = {e.name: e.language for e in config.editions}
        self.languages = tuple(dict.fromkeys(e.language for e in config.editions)) or ("en",)
        self.countries = Countries.from_config(config)

    @property
    def default_language(self) -> str:
        return self.languages[0]

    def language(self, value: str) -> str:
        value = (value or "").strip().lower() or self.default_language
        if value not in self.languages:
            raise SubscriberError(f"language {value!r}: expected one of {', '.join(self.languages)}")
        return value

    def edition_names(self, values: Iterable[str], language: str) -> tuple[str, ...]:
        names: list[str] = []
        for value in values:
            value = value.strip()
            if not value:
                continue
            if value not in self.editions:
                known = ", ".join(self.editions) or "none configured"
                raise SubscriberError(f"edition {value!r}: expected one of {known}")
            if self.editions[value] != language:
                raise SubscriberError(f"edition {value!r} is in {self.editions[value]!r}, not in {language!r}")
            names.append(value)
        return tuple(dict.fromkeys(names))

    def country_slugs(self, values: Iterable[str]) -> tuple[str, ...]:
        slugs: list[str] = []
        for value in values:
            if not value.strip():
                continue
            slug = self.countries.match(value)
            if slug is None:
                raise SubscriberError(f"country {value.strip()!r} is not a known country")
            slugs.append(slug)
        return tuple(dict.fromkeys(slugs))

    def name(self, text: str) -> str:
        # Control and format characters (ESC, BEL, bidi overrides) have no place in a name.
        # (A printable name has none, and most names are: only the others are scanned.)
        name = text or ""
        if not name.isprintable():
            name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf"))
        name = " ".join(name.split())
        if len(name) > 200:
            raise SubscriberError("name is longer than 200 characters")
        return name

    def profile(self, name: str, language: str, editions: Iterable[str], countries: Iterable[str]) -> Profile:
        lang = self.language(language)
        return Profile(self.name(name), lang, self.edition_names(editions, lang), self.country_slugs(countries))


def split_list(text: str) -> list[str]:
    """A list cell of the CSV or a CLI flag: items separated by ';' or ','."""
    return [item.strip() for item in (text or "").replace(",", ";").split(";") if item.strip()]
