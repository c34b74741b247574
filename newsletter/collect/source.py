"""The one small protocol every source kind implements, and what a kind hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from newsletter.collect.extract import BodyRules
from newsletter.collect.http import Fetcher
from newsletter.briefs import Brief, Sighting
from newsletter.config import Config, SourceConfig
from newsletter.countries import Countries

# Briefs published this many days back are checked for retraction on every collect.
RETRACTION_DAYS = 30


class BadItem(ValueError):
    """One item cannot become a brief (no title, link or date; unreadable text): it is skipped, not the source."""


class NotPublic(Exception):
    """The item is not public (password-protected, private, draft, pending, future, trashed).

    It is never stored; a brief already stored from it is withdrawn with this reason.
    """


@dataclass(frozen=True)
class Extraction:
    """Everything a kind's pure parsing functions need to turn a response into briefs."""

    source: SourceConfig
    countries: Countries
    rules: BodyRules

    @classmethod
    def for_source(cls, config: Config, source: SourceConfig, countries: Countries) -> "Extraction":
        rules = BodyRules.for_publication(config.publication.name, source.analysis_headings)
        return cls(source=source, countries=countries, rules=rules)


@dataclass(frozen=True)
class Memory:
    """What the store remembers of a source between runs."""

    # The source's high-water mark (WordPress modified_gmt), None before its first run.
    cursor: str | None = None
    # Kind-specific state of the last walk (WordPress: the site's post count and newest post).
    walk: dict[str, Any] | None = None
    # The source's public briefs published within RETRACTION_DAYS, by key: checked for retraction.
    recent: dict[str, Sighting] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    """An item skipped because it could not be read, and why."""

    key: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.key, "reason": self.reason}


@dataclass
class Harvest:
    briefs: list[Brief] = field(default_factory=list)
    # The source's new high-water mark (WordPress modified_gmt), or None to keep the old one.
    cursor: str | None = None
    # The walk state to remember, or None to keep the old one.
    walk: dict[str, Any] | None = None
    # Items a 304 (or the cursor) told us are unchanged without fetching or parsing them.
    not_modified: int = 0
    # Items seen but not briefs (profiles and the like).
    skipped: int = 0
    # Items that could not be read: skipped with their reason.
    rejected: list[Rejected] = field(default_factory=list)
    # {key: reason} of items the publisher withdrew or never made public.
    withdrawn: dict[str, str] = field(default_factory=dict)


class SourceKind(Protocol):
    def harvest(self, fetcher: Fetcher, memory: Memory) -> Harvest:
        """Fetch what changed since the last run and parse it into briefs; raise SourceError on failure."""
        ...
