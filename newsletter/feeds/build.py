"""Build every feed from the store and write the files that changed: the I/O edge of feeds.

One feed per configured language (sources and editions) that has briefs, and one per
country within it. A file is replaced atomically and only when its bytes differ, so an
unchanged feed keeps its modification time and its ETag, and a half-written file is
never served.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from feedgen.entry import FeedEntry

from newsletter import briefs
from newsletter.config import Config
from newsletter.countries import Countries
from newsletter.errors import NewsletterError
from newsletter.feeds import websub
from newsletter.feeds.atom import Site, render
from newsletter.feeds.plan import Document, Feed, plan, usable_slug

log = logging.getLogger(__name__)


@dataclass
class FeedReport:
    output_dir: Path
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    hub: websub.PingResult = field(default_factory=websub.PingResult)

    @property
    def paths(self) -> list[Path]:
        return sorted(self.written + self.unchanged)


def languages(config: Config) -> list[str]:
    return sorted({s.language for s in config.sources} | {e.language for e in config.editions})


def documents(config: Config, conn: sa.Connection) -> list[Document]:
    """Every document to write, from the briefs in the store."""
    docs: list[Document] = []
    total = briefs.count(conn)
    for language in languages(config):
        in_language = briefs.recent(conn, language=language, limit=max(total, 1))
        if not in_language:
            continue
        feeds: dict[Feed, list[briefs.Brief]] = {Feed(language): in_language}
        for brief in in_language:
            for slug in brief.countries:
                if usable_slug(slug):
                    feeds.setdefault(Feed(language, slug), []).append(brief)
                else:
                    log.warning("country slug unusable in a file name, no feed for it", extra={"country": slug})
        for feed, items in feeds.items():
            docs.extend(plan(feed, items, entries=config.feed.entries, archive_size=config.feed.archive_size))
    return docs


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace `path` with `data` unless it already holds exactly that; True when written."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file private; a web server in front of the folder must read it.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def build(config: Config, engine: sa.Engine) -> FeedReport:
    """Write every feed into `[feed].output_dir`; ping the WebSub hub for the feeds that changed."""
    output_dir = config.resolve(config.feed.output_dir)
    report = FeedReport(output_dir=output_dir)
    site = Site(config, Countries.from_config(config))
    hub = config.feed.websub_hub
    with engine.connect() as conn:
        docs = documents(config, conn)
    entries: dict[str, FeedEntry] = {}
    changed_feeds: list[str] = []
    for doc in docs:
        path = output_dir / doc.path
        try:
            written = write_if_changed(path, render(doc, entries, site, hub=hub))
        except OSError as exc:
            raise NewsletterError(f"feed.output_dir: cannot write {path}: {exc.strerror}") from exc
        (report.written if written else report.unchanged).append(path)
        if written and doc.archive_page is None:
            changed_feeds.append(site.feed_url(doc.path))
    if hub and changed_feeds:
        agent = websub.user_agent(config.publication.public_url, config.collect.user_agent)
        report.hub = websub.ping(hub, changed_feeds, user_agent=agent)
    return report


def build_all(config: Config, engine: sa.Engine) -> list[Path]:
    """Every feed file, written now or already current (see `build` for which was which)."""
    return build(config, engine).paths
