"""The one small protocol every source kind implements, and what a kind hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from newsletter.collect.extract import BodyRules
from newsletter.collect.http import Fetcher
from newsletter.briefs import Brief
from newsletter.config import Config, SourceConfig
from newsletter.countries import Countries


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


@dataclass
class Harvest:
    briefs: list[Brief] = field(default_factory=list)
    # The source's new high-water mark (WordPress modified_gmt), or None to keep the old one.
    cursor: str | None = None
    # Items a 304 (or the cursor) told us are unchanged without fetching or parsing them.
    not_modified: int = 0
    # Items seen but not briefs (profiles and the like).
    skipped: int = 0


class SourceKind(Protocol):
    def harvest(self, fetcher: Fetcher, cursor: str | None) -> Harvest:
        """Fetch what changed since `cursor` and parse it into briefs; raise SourceError on failure."""
        ...
