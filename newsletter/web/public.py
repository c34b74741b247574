"""What the public pages (home, archive listing, feeds list) share: templates and wording, the
page language, feed autodiscovery links, and conditional GET over pages kept rendered in memory.

A page is rendered once per store change, path and language, then kept: a request costs a
dictionary look-up and, at most once every STATE_SECONDS, two aggregate queries that tell
whether the store changed. The ETag is the page's hash; Last-Modified is the store's last
change, or the server's start (when templates and config were read) if that is later. So
readers and caches revalidate with a cheap 304, and `serve` keeps up with hundreds of
requests a second on one core.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Callable, Iterable

import jinja2
import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter.config import Config
from newsletter.feeds.build import languages as feed_languages
from newsletter.feeds.words import words as feed_words
from newsletter.sanitize import clean_text
from newsletter.web import catalogue
from newsletter.web.feeds import etag_matches, not_modified_since
from newsletter.web.i18n import Messages, page_language, template_dirs
from newsletter.web.security import CSRF_COOKIE, csrf_token, new_csrf_cookie

ATOM_TYPE = "application/atom+xml"
HTML_TYPE = "text/html; charset=utf-8"
STATE_SECONDS = 1.0
# Pages without a form: any cache may keep them a minute, then revalidate.
CACHE_CONTROL = "public, max-age=60"
# A page with the sign-up form carries the visitor's CSRF token: only their browser may keep it.
FORM_CACHE_CONTROL = "private, no-cache"
# Where the visitor's CSRF token goes in a kept page (letters only, so escaping leaves it alone).
CSRF_MARK = "nlcsrfmarkzq"
MAX_KEPT = 512  # rendered pages kept; past it the cache starts again (page numbers are unbounded)


@dataclass(frozen=True)
class Alternate:
    """A `<link rel="alternate">` for feed autodiscovery."""

    title: str
    href: str
    type: str = ATOM_TYPE


def language_feeds(config: Config, language: str) -> list[Alternate]:
    """The feed of `language` (every language's when it has none), as autodiscovery links."""
    languages = feed_languages(config)
    chosen = [language] if language in languages else languages
    publisher = clean_text(config.publication.name)
    base = config.publication.public_url.rstrip("/")
    return [Alternate(feed_words(code).title.format(publisher=publisher), f"{base}/feeds/{code}.atom") for code in chosen]


@dataclass(frozen=True)
class Kept:
    """A rendered page as bytes, cut around the CSRF mark when it holds the sign-up form."""

    pieces: tuple[bytes, ...]
    digest: str
    modified: int  # whole seconds since the epoch
    last_modified: str  # the same, as the header says it
    media_type: str = HTML_TYPE

    @classmethod
    def of(cls, page: str, modified: int, media_type: str) -> "Kept":
        data = page.encode("utf-8")
        return cls(tuple(data.split(CSRF_MARK.encode())), hashlib.sha256(data).hexdigest()[:32], modified,
                   formatdate(modified, usegmt=True), media_type)

    @property
    def has_form(self) -> bool:
        return len(self.pieces) > 1


class Public:
    """The shared state of the public pages: one per app."""

    def __init__(self, config: Config, engine: sa.Engine) -> None:
        self.config = config
        self.engine = engine
        self.messages = Messages(config)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(config)]),
            autoescape=jinja2.select_autoescape(["html"]),
        )
        self.env.globals["language_feeds"] = lambda lang: language_feeds(config, lang)
        self.started = time.time()
        self._state: catalogue.StoreState | None = None
        self._checked = float("-inf")
        self._kept: dict[tuple, tuple[tuple, Kept]] = {}
        self._key: bytes | None = None

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = self.config.secret_key()
        return self._key

    def lang(self, request: Request) -> str:
        return page_language(request, self.messages.languages)

    def url(self, path: str) -> str:
        return self.config.publication.public_url.rstrip("/") + path

    def render(self, template: str, lang: str, title: str, *, alternates: Iterable[Alternate] = (),
               **context: Any) -> str:
        """A public page; `csrf` renders as CSRF_MARK, replaced per visitor when answering."""
        words = self.messages.words(lang)
        return self.env.get_template(template).render(
            t=words, lang=lang, title=title, publication=self.config.publication, csrf=CSRF_MARK,
            languages=[(code, self.messages.words(code)["language_name"]) for code in self.messages.languages],
            alternates=list(alternates) or language_feeds(self.config, lang), public=True, **context,
        )

    def _read_state(self) -> catalogue.StoreState:
        with self.engine.connect() as conn:
            return catalogue.state(conn)

    async def state(self) -> catalogue.StoreState:
        """The store's state, looked at again at most every STATE_SECONDS."""
        now = time.monotonic()
        if self._state is None or now - self._checked >= STATE_SECONDS:
            self._checked = now
            self._state = await run_in_threadpool(self._read_state)
        return self._state

    async def page(self, request: Request, key: tuple, build: Callable[[], str | None], *,
                   media_type: str = HTML_TYPE, headers: dict[str, str] | None = None) -> Response:
        """The page `build` renders (None: there is no such page, a 404), from memory while the store is
        unchanged."""
        state = await self.state()
        kept = self._kept.get(key)
        if kept is None or kept[0] != state.signature:
            html = await run_in_threadpool(build)
            if html is None:
                return self.not_found(request)
            modified = int(max(state.changed_at.timestamp(), self.started))
            kept = (state.signature, Kept.of(html, modified, media_type))
            # Only the event loop's thread touches the kept pages: no lock needed.
            if len(self._kept) >= MAX_KEPT:
                self._kept.clear()
            self._kept[key] = kept
        return self.answer(request, kept[1], headers or {})

    def not_found(self, request: Request) -> Response:
        lang = self.lang(request)
        words = self.messages.words(lang)
        html = self.render("notice.html", lang, words["not_found_title"], message=words["not_found"], role="",
                           links=[(f"/?lang={lang}", words["nav_home"])])
        return HTMLResponse(html, status_code=404, headers={"Cache-Control": CACHE_CONTROL})

    def answer(self, request: Request, kept: Kept, extra: dict[str, str]) -> Response:
        """200 with the page, or 304 when the visitor's copy is current."""
        new_cookie = ""
        body = kept.pieces[0]
        etag = kept.digest
        if kept.has_form:
            cookie = request.cookies.get(CSRF_COOKIE, "")
            if not 16 <= len(cookie) <= 64:
                cookie = new_cookie = new_csrf_cookie()
            token = csrf_token(self.key, cookie)
            body = token.encode().join(kept.pieces)
            # The token is part of the page: a new cookie is a new representation.
            etag = hashlib.sha256(f"{kept.digest}{token}".encode()).hexdigest()[:32]
        headers = {
            "ETag": f'"{etag}"',
            "Last-Modified": kept.last_modified,
            "Cache-Control": FORM_CACHE_CONTROL if kept.has_form else CACHE_CONTROL,
            "Vary": "Accept-Language, Cookie" if kept.has_form else "Accept-Language",
            **extra,
        }
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None:
            unchanged = etag_matches(if_none_match, headers["ETag"])
        else:
            since = request.headers.get("if-modified-since")
            unchanged = since is not None and not_modified_since(since, kept.modified)
        response: Response
        if unchanged and not new_cookie:
            response = Response(status_code=304, headers=headers)
        else:
            response = Response(body, headers=headers, media_type=kept.media_type)
        if new_cookie:
            # As Response.set_cookie writes it, without building a SimpleCookie on every first visit.
            secure = "; Secure" if request.scope.get("scheme") == "https" else ""
            response.raw_headers.append(
                (b"set-cookie", f"{CSRF_COOKIE}={new_cookie}; HttpOnly; Path=/; SameSite=strict{secure}".encode()))
        return response

