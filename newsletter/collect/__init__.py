"""Collect: fetch every configured source and store its briefs.

Each source is fetched and parsed first, then written in one transaction: its briefs,
its conditional-GET validators and its cursor together. A source that fails writes
nothing but its error (`sources.last_error`), so a bad run never loses or changes what
an earlier run stored, and the other sources are still collected.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Protocol

import sqlalchemy as sa

from newsletter import briefs as briefs_module
from newsletter.briefs import Brief
from newsletter.collect.feed import Feed
from newsletter.collect.http import Fetcher, user_agent
from newsletter.collect.pages import Pages
from newsletter.collect.source import Extraction, Harvest, SourceKind
from newsletter.collect.wordpress import WordPress
from newsletter.config import Config, SourceConfig
from newsletter.countries import Countries
from newsletter.errors import SourceError
from newsletter.store import schema, utcnow

log = logging.getLogger(__name__)

KINDS: dict[str, type] = {"wordpress": WordPress, "feed": Feed, "pages": Pages}


@dataclass(frozen=True)
class SourceResult:
    name: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    error: str | None = None
    requests: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Progress(Protocol):
    """What an operator's display hears while sources are collected."""

    def started(self, source: str) -> None: ...

    def requested(self, source: str, url: str, count: int) -> None: ...

    def finished(self, result: SourceResult) -> None: ...


def collect_all(config: Config, engine: sa.Engine, progress: Progress | None = None) -> list[SourceResult]:
    """Collect every source in config order; one source's failure never stops the others."""
    countries = Countries.from_config(config)
    results = []
    for source in config.sources:
        if progress:
            progress.started(source.name)
        result = collect_source(config, engine, source, countries, progress)
        if progress:
            progress.finished(result)
        results.append(result)
    return results


def collect_source(config: Config, engine: sa.Engine, source: SourceConfig, countries: Countries,
                   progress: Progress | None = None) -> SourceResult:
    with engine.connect() as conn:
        row = conn.execute(sa.select(schema.sources).where(schema.sources.c.name == source.name)).first()
    fetcher = Fetcher(
        timeout=source.timeout_seconds,
        max_bytes=source.max_bytes,
        retries=source.retries,
        agent=user_agent(config.publication.site_url, config.collect.user_agent),
        validators=dict(row.validators or {}) if row else {},
    )
    if progress:
        fetcher.on_request = lambda url: progress.requested(source.name, url, fetcher.requests)
    kind: SourceKind = KINDS[source.kind](Extraction.for_source(config, source, countries))
    cursor = row.cursor if row else None
    try:
        harvest = kind.harvest(fetcher, cursor)
    except SourceError as exc:
        return _failed(engine, source.name, str(exc), fetcher.requests)
    except Exception as exc:  # a parser bug must cost one source, not the run
        log.exception("collecting %s failed unexpectedly", source.name)
        return _failed(engine, source.name, f"unexpected {type(exc).__name__}: {exc}", fetcher.requests)
    finally:
        fetcher.close()
    return _store(config, engine, source.name, harvest, fetcher, cursor)


def _latest_per_key(briefs: list[Brief]) -> list[Brief]:
    """One brief per key (a post can move between pages while we read them): the latest copy."""
    chosen: dict[str, Brief] = {}
    for brief in briefs:
        known = chosen.get(brief.key)
        if known is None or brief.modified_at >= known.modified_at:
            chosen[brief.key] = brief
    return list(chosen.values())


def _store(config: Config, engine: sa.Engine, name: str, harvest: Harvest, fetcher: Fetcher,
           old_cursor: str | None) -> SourceResult:
    counts = {"new": 0, "updated": 0, "unchanged": harvest.not_modified}
    now = utcnow()
    with engine.begin() as conn:
        for brief in _latest_per_key(harvest.briefs):
            outcome, _ = briefs_module.upsert(conn, brief, site_url=config.publication.site_url)
            counts[outcome] += 1
        _save_source(conn, name, validators=fetcher.next_validators(), cursor=harvest.cursor or old_cursor,
                     last_run_at=now, last_success_at=now, last_error=None, last_counts=counts)
    # Callers report results (the CLI's table, the scheduler's log); this is for -v.
    log.debug("collected %s", name, extra={"source": name, **counts, "skipped": harvest.skipped,
                                           "requests": fetcher.requests})
    return SourceResult(name=name, requests=fetcher.requests, **counts)


def _failed(engine: sa.Engine, name: str, error: str, requests: int) -> SourceResult:
    log.debug("source %s failed: %s", name, error, extra={"source": name})
    with engine.begin() as conn:
        _save_source(conn, name, last_run_at=utcnow(), last_error=error)
    return SourceResult(name=name, error=error, requests=requests)


def _save_source(conn: sa.Connection, name: str, **values: object) -> None:
    table = schema.sources
    exists = conn.execute(sa.select(table.c.name).where(table.c.name == name)).first()
    if exists:
        conn.execute(table.update().where(table.c.name == name).values(**values))
    else:
        conn.execute(table.insert().values(name=name, validators=values.pop("validators", {}), **values))
