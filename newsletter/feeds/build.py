"""Build every feed from the store and write the files that changed: the I/O edge of feeds.

One feed per configured language (sources and editions) that has briefs, and one per
country within it. A file is replaced atomically and only when its bytes differ, so an
unchanged feed keeps its modification time and its ETag, and a half-written file is
never served.

Rendering is the expensive part, so a document is only rendered when its fingerprint
(its briefs' ids, content hashes and times, its links, the config it shows and the code
and libraries that render it) or its file's bytes differ from those recorded in `MANIFEST`
when it was last written: rebuilding thousands of unchanged briefs after a collect costs
a query and reading the files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import sqlalchemy as sa
from feedgen.entry import FeedEntry

from newsletter import __version__, briefs, countries, excerpt, sanitize
from newsletter.config import Config
from newsletter.countries import Countries
from newsletter.errors import NewsletterError
from newsletter.feeds import atom, plan as plan_module, websub, words
from newsletter.feeds.atom import Site, render
from newsletter.feeds.plan import Document, Feed, plan, usable_slug

log = logging.getLogger(__name__)
MANIFEST = ".fingerprints.json"
_RENDERING_CODE = (atom, words, plan_module, sanitize, excerpt, countries)
_RENDERING_LIBRARIES = ("feedgen", "lxml", "nh3")


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
    for language in languages(config):
        in_language = briefs.in_language(conn, language)
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


def build_key(config: Config) -> str:
    """What shapes every document besides its briefs: the config it shows, the code and libraries."""
    digest = hashlib.sha256(__version__.encode())
    for module in _RENDERING_CODE:
        digest.update(Path(module.__file__).read_bytes())
    for library in _RENDERING_LIBRARIES:
        digest.update(metadata.version(library).encode())
    shown = (config.publication, config.feed, [(s.language, s.url) for s in config.sources], config.collect.countries)
    digest.update(repr(shown).encode())
    return digest.hexdigest()


def fingerprint(doc: Document, key: str) -> str:
    digest = hashlib.sha256(key.encode())
    digest.update(repr((doc.path, doc.archive_page, doc.prev_archive, doc.next_archive)).encode())
    for b in doc.briefs:
        digest.update(repr((b.guid, b.content_hash, b.published_at, b.modified_at, b.first_seen_at,
                            b.updated_at, b.withdrawn_at)).encode())
    return digest.hexdigest()


def _read_manifest(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _sha256_of(path: Path) -> str | None:
    """The file's hash, so a file another build overwrote since is rendered again."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


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
    key = build_key(config)
    manifest_path = output_dir / MANIFEST
    previous = _read_manifest(manifest_path)
    manifest: dict[str, str] = {}
    entries: dict[str, FeedEntry] = {}
    changed_feeds: list[str] = []
    for doc in docs:
        path = output_dir / doc.path
        expected = fingerprint(doc, key)
        recorded, _, recorded_bytes = previous.get(doc.path, "").partition(" ")
        if recorded == expected and _sha256_of(path) == recorded_bytes:
            manifest[doc.path] = previous[doc.path]
            report.unchanged.append(path)
            continue
        data = render(doc, entries, site, hub=hub)
        manifest[doc.path] = f"{expected} {hashlib.sha256(data).hexdigest()}"
        try:
            written = write_if_changed(path, data)
        except OSError as exc:
            raise NewsletterError(f"feed.output_dir: cannot write {path}: {exc.strerror}") from exc
        (report.written if written else report.unchanged).append(path)
        if written and doc.archive_page is None:
            changed_feeds.append(site.feed_url(doc.path))
    # Written last: a build that stops half way leaves fingerprints that only cause re-rendering.
    write_if_changed(manifest_path, json.dumps(manifest, indent=0, sort_keys=True).encode())
    if hub and changed_feeds:
        agent = websub.user_agent(config.publication.public_url, config.collect.user_agent)
        report.hub = websub.ping(hub, changed_feeds, user_agent=agent)
    return report


def build_all(config: Config, engine: sa.Engine) -> list[Path]:
    """Every feed file, written now or already current (see `build` for which was which)."""
    return build(config, engine).paths
