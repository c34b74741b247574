"""`/feeds/...`: the built feed files over HTTP, with conditional GET and gzip.

Served from the files `newsletter feed` writes (same names under `/feeds/`), read again
only when a file changes. Each file has two representations, identity and gzip, each with
its own strong ETag, so a cache never mixes them up. A feed file that is missing is built
on demand, at most once per `REBUILD_SECONDS`, so requests for feeds that do not exist
cannot make the server rebuild without end.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from newsletter import feeds
from newsletter.config import Config

MEDIA_TYPE = "application/atom+xml; charset=utf-8"
# Feed readers poll; shared caches may keep a copy this long, and revalidating is a cheap 304.
CACHE_CONTROL = "public, max-age=300"
REBUILD_SECONDS = 60.0
# The names `newsletter.feeds` writes: en.atom, en/colombia.atom, en/archive/2.atom, en/colombia/archive/2.atom.
FEED_PATH = re.compile(r"^[a-z]{2,3}(?:/[a-z0-9]+(?:-[a-z0-9]+)*)?(?:/archive/[1-9][0-9]*)?\.atom$")


@dataclass(frozen=True)
class Representations:
    identity: bytes
    gzipped: bytes
    etag: str
    gzip_etag: str
    modified: int  # whole seconds since the epoch, as Last-Modified can say
    last_modified: str


def representations(data: bytes, mtime: float) -> Representations:
    digest = hashlib.sha256(data).hexdigest()[:32]
    return Representations(
        identity=data,
        # mtime=0 keeps the gzip bytes a function of the feed's bytes alone.
        gzipped=gzip.compress(data, compresslevel=9, mtime=0),
        etag=f'"{digest}"',
        gzip_etag=f'"{digest}-gzip"',
        modified=int(mtime),
        last_modified=formatdate(int(mtime), usegmt=True),
    )


class FeedFiles:
    """The feed files under `[feed].output_dir`, cached in memory until a file changes."""

    def __init__(self, config: Config, engine: sa.Engine) -> None:
        self.config = config
        self.engine = engine
        self.root = config.resolve(config.feed.output_dir)
        self._cache: dict[str, tuple[tuple[int, int, int], Representations]] = {}
        self._build_lock = threading.Lock()
        self._last_build = float("-inf")

    def cached(self, name: str) -> Representations | None:
        """The representations in memory, if the file has not changed since they were made."""
        try:
            stat = (self.root / name).stat()
        except FileNotFoundError:
            return None
        cached = self._cache.get(name)
        if cached and cached[0] == (stat.st_ino, stat.st_mtime_ns, stat.st_size):
            return cached[1]
        return None

    def read(self, name: str) -> Representations | None:
        """The file's representations, read and compressed again if it changed; None when missing."""
        path = self.root / name
        try:
            stat = path.stat()
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        reps = representations(data, stat.st_mtime)
        self._cache[name] = ((stat.st_ino, stat.st_mtime_ns, stat.st_size), reps)
        return reps

    def build_missing(self, name: str) -> Representations | None:
        """Build the feeds when `name` is missing, unless a build ran within REBUILD_SECONDS."""
        with self._build_lock:
            reps = self.read(name)
            if reps is not None or time.monotonic() - self._last_build < REBUILD_SECONDS:
                return reps
            self._last_build = time.monotonic()
            feeds.build(self.config, self.engine)
            return self.read(name)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether Accept-Encoding allows gzip (explicitly or through `*`), honouring q=0."""
    explicit: float | None = None
    wildcard: float | None = None
    for item in accept_encoding.split(","):
        coding, *params = [part.strip() for part in item.split(";")]
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        coding = coding.lower()
        if coding in ("gzip", "x-gzip"):
            explicit = q
        elif coding == "*":
            wildcard = q
    if explicit is not None:
        return explicit > 0
    return wildcard is not None and wildcard > 0


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison, as If-None-Match uses: W/ prefixes do not matter."""
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


def not_modified_since(if_modified_since: str, modified: int) -> bool:
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        return False
    return modified <= since.timestamp()


def routes(config: Config, engine: sa.Engine) -> list[BaseRoute]:
    files = FeedFiles(config, engine)

    async def feed(request: Request) -> Response:
        name = request.path_params["name"]
        if not FEED_PATH.match(name):
            return PlainTextResponse("no such feed", status_code=404)
        # Reading and compressing a changed file, or building a missing one, stays off the event loop.
        reps = (files.cached(name) or await run_in_threadpool(files.read, name)
                or await run_in_threadpool(files.build_missing, name))
        if reps is None:
            return PlainTextResponse("no such feed", status_code=404)
        gzipped = accepts_gzip(request.headers.get("accept-encoding", ""))
        etag = reps.gzip_etag if gzipped else reps.etag
        headers = {
            "ETag": etag,
            "Last-Modified": reps.last_modified,
            "Cache-Control": CACHE_CONTROL,
            "Vary": "Accept-Encoding",
        }
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None:
            unchanged = etag_matches(if_none_match, etag)
        else:
            # If-Modified-Since only counts without If-None-Match (RFC 9110 section 13.1.3).
            unchanged = not_modified_since(request.headers.get("if-modified-since", ""), reps.modified)
        if unchanged:
            return Response(status_code=304, headers=headers)
        body = reps.gzipped if gzipped else reps.identity
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        headers["Content-Length"] = str(len(body))
        if request.method == "HEAD":
            return Response(headers=headers, media_type=MEDIA_TYPE)
        return Response(body, headers=headers, media_type=MEDIA_TYPE)

    return [Route("/feeds/{name:path}", feed, methods=["GET", "HEAD"])]

