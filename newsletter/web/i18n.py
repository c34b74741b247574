"""The words of the subscriber pages in English and Spanish, and which language a page speaks."""

from __future__ import annotations

import hashlib
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from starlette.requests import Request

from newsletter.config import Config
from newsletter.errors import ConfigError

DEFAULT_TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "web"
FALLBACK = "en"


def template_dirs(config: Config) -> list[Path]:
    """The operator's `templates/web` next to the config first, then the project's own."""
    return [config.resolve("templates/web"), DEFAULT_TEMPLATES]


@lru_cache(maxsize=8)
def _load(path: Path) -> dict[str, dict[str, str]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the page wording: {exc}") from exc
    return {lang: dict(words) for lang, words in data.items()}


class Messages:
    """Page wording per language; the English text stands in for any word a language lacks."""

    def __init__(self, config: Config) -> None:
        path = next((d / "messages.toml" for d in template_dirs(config) if (d / "messages.toml").is_file()))
        self.by_language = _load(path)
        if FALLBACK not in self.by_language:
            raise ConfigError(f"{path}: no [{FALLBACK}] table; it is the wording every language falls back to")

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.by_language)

    def words(self, language: str) -> dict[str, str]:
        return {**self.by_language[FALLBACK], **self.by_language.get(language, {})}

    def form_version(self, language: str) -> str:
        """Names the consent wording a person saw: it changes whenever the wording does."""
        digest = hashlib.sha256(self.words(language)["consent"].encode("utf-8")).hexdigest()[:12]
        return f"subscribe-{language}-{digest}"


def _accepted(header: str) -> Iterable[str]:
    """Languages of an Accept-Language header, most wanted first."""
    weighted = []
    for i, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and quality > 0:
            weighted.append((-quality, i, tag.split("-")[0].lower()))
    return (tag for _, _, tag in sorted(weighted))


def page_language(request: Request, available: Iterable[str], subscriber_language: str | None = None) -> str:
    """`?lang=`, else the subscriber's language, else Accept-Language, else English."""
    available = tuple(available)
    asked = request.query_params.get("lang", "")
    if asked in available:
        return asked
    if subscriber_language in available:
        return subscriber_language
    for tag in _accepted(request.headers.get("accept-language", "")):
        if tag in available:
            return tag
    return FALLBACK
