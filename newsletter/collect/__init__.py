"""Collect: fetch every configured source and store its briefs.

Each source is fetched and parsed first, then written in one transaction: its briefs,
the briefs its publisher withdrew, its conditional-GET validators and its cursor together.
A source that fails writes nothing but its error (`sources.last_error`), so a bad run never
loses or changes what an earlier run stored, and the other sources are still collected.
One bad item costs only itself: it is skipped with its reason. A source whose site asks
us to come back later than the retry budget allows is deferred to that time: runs before
it report it as not collected without asking the site anything.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa

from newsletter import briefs as briefs_module
from newsletter.briefs import Brief
from newsletter.collect.feed import Feed
from newsletter.collect.http import Deferred, Fetcher, user_agent
from newsletter.collect.pages import Pages
from newsletter.collect.source import RETRACTION_DAYS, Extraction, Harvest, Memory, SourceKind
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
    # Briefs this run withdrew because their publisher did (trashed, unpublished, protected, deleted).
    withdrawn: int = 0
    error: str | None = None
    requests: int = 0
    # Items that could not be read: [{"id": ..., "reason": ...}].
    skipped: list[dict[str, str]] = field(default_factory=list)
    # Set while the site asked us to wait: the source is not collected before this time.
    deferred_until: str | None = None

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
    for source in config.sources:
        source.auth()  # a missing password stops the run before any source is asked
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
    now = utcnow()
    with engine.connect() as conn:
        row = conn.execute(sa.select(schema.sources).where(schema.sources.c.name == source.name)).first()
        recent = briefs_module.sighted_by(conn, source.name, published_since=now - timedelta(days=RETRACTION_DAYS))
    if row is not None and row.deferred_until is not None and row.deferred_until > now:
        until = _stamp(row.deferred_until)
        return SourceResult(name=source.name, error=f"deferred until {until}: the site asked us to wait",
                            deferred_until=row.deferred_until.isoformat())
    fetcher = Fetcher(
        timeout=source.timeout_seconds,
        max_bytes=source.max_bytes,
        retries=source.retries,
        agent=user_agent(config.publication.site_url, config.collect.user_agent),
        validators=dict(row.validators or {}) if row else {},
        auth=source.auth(),
    )
    if progress:
        fetcher.on_request = lambda url: progress.requested(source.name, url, fetcher.requests)
    kind: SourceKind = KINDS[source.kind](Extraction.for_source(config, source, countries))
    memory = Memory(cursor=row.cursor if row else None, walk=row.walk if row else None, recent=recent)
    try:
        harvest = kind.harvest(fetcher, memory)
    except Deferred as exc:
        return _failed(engine, source.name, str(exc), fetcher.requests, deferred_until=exc.until)
    except SourceError as exc:
        return _failed(engine, source.name, str(exc), fetcher.requests)
    except Exception as exc:  # a parser bug must cost one source, not the run
        log.exception("collecting %s failed unexpectedly", source.name)
        return _failed(engine, source.name, f"unexpected {type(exc).__name__}: {exc}", fetcher.requests)
    finally:
        fetcher.close()
    return _store(config, engine, source.name, harvest, fetcher, memory, now)


def _stamp(when: datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S}Z"


def _latest_per_key(briefs: list[Brief]) -> list[Brief]:
    """One brief per key (a post can move between pages while we read them): the latest copy."""
    chosen: dict[str, Brief] = {}
    for brief in briefs:
        known = chosen.get(brief.key)
        if known is None or brief.modified_at >= known.modified_at:
            chosen[brief.key] = brief
    return list(chosen.values())


def _store(config: Config, engine: sa.Engine, name: str, harvest: Harvest, fetcher: Fetcher,
           memory: Memory, now: datetime) -> SourceResult:
    counts = {"new": 0, "updated": 0, "unchanged": harvest.not_modified}
    withdrawn = 0
    with engine.begin() as conn:
        for brief in _latest_per_key(harvest.briefs):
            outcome, _ = briefs_module.upsert(conn, brief, site_url=config.publication.site_url, now=now)
            counts[outcome] += 1
        for key, reason in harvest.withdrawn.items():
            brief_id = briefs_module.brief_of(conn, name, key)
            if brief_id is not None and briefs_module.withdraw(conn, brief_id, reason, now):
                withdrawn += 1
                log.info("brief withdrawn", extra={"source": name, "key": key, "reason": reason})
        skipped = [r.as_dict() for r in harvest.rejected]
        _save_source(conn, name, validators=fetcher.next_validators(), cursor=harvest.cursor or memory.cursor,
                     walk=harvest.walk if harvest.walk is not None else memory.walk, deferred_until=None,
                     last_run_at=now, last_success_at=now, last_error=None,
                     last_counts={**counts, "withdrawn": withdrawn, "skipped": len(skipped)})
    for item in skipped:
        log.warning("item skipped", extra={"source": name, **item})
    # Callers report results (the CLI's table, the scheduler's log); this is for -v.
    log.debug("collected %s", name, extra={"source": name, **counts, "not_briefs": harvest.skipped,
                                           "requests": fetcher.requests})
    return SourceResult(name=name, requests=fetcher.requests, withdrawn=withdrawn, skipped=skipped, **counts)


def _failed(engine: sa.Engine, name: str, error: str, requests: int,
            deferred_until: datetime | None = None) -> SourceResult:
    log.debug("source %s failed: %s", name, error, extra={"source": name})
    with engine.begin() as conn:
        _save_source(conn, name, last_run_at=utcnow(), last_error=error, deferred_until=deferred_until)
    return SourceResult(name=name, error=error, requests=requests,
                        deferred_until=deferred_until.isoformat() if deferred_until else None)


def _save_source(conn: sa.Connection, name: str, **values: object) -> None:
    table = schema.sources
    exists = conn.execute(sa.select(table.c.name).where(table.c.name == name)).first()
    if exists:
        conn.execute(table.update().where(table.c.name == name).values(**values))
    else:
        conn.execute(table.insert().values(name=name, validators=values.pop("validators", {}), **values))
