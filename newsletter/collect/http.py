"""The polite HTTP client every source kind fetches through.

One `Fetcher` per source: one requests.Session, a User-Agent naming the project, a
deadline per response (a server that hangs or trickles cannot stall the run), bounded
retries with exponential backoff on 429/5xx and connection failures honouring
Retry-After (a site that asks for more than `MAX_RETRY_WAIT` defers the source instead of
stalling the run), conditional GET with the validators remembered per URL (a 304 costs no
parsing), and a streamed size cap that stops reading a huge body early.
"""

from __future__ import annotations

import email.utils
import html
import http
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from newsletter import __version__
from newsletter.errors import SourceError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# The retry budget: never wait longer than this for one retry. A Retry-After beyond it
# defers the source to that time instead: the run has other sources.
MAX_RETRY_WAIT = 60.0
MAX_BACKOFF = 30.0
CHUNK = 65536
KEEP_BODY_LIMIT = 65536
# Error lines show URLs cut to this many characters: the reason is what the reader needs first.
SHORT_URL_CHARS = 70
# How much of the server's own explanation of an error an error line quotes.
DETAIL_CHARS = 120


class StatusError(SourceError):
    """The server answered with an HTTP error status (after any retries)."""

    def __init__(self, message: str, status: int, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class Deferred(SourceError):
    """The site asked us to come back later than the retry budget allows (Retry-After)."""

    def __init__(self, message: str, until: datetime) -> None:
        super().__init__(message)
        self.until = until


def short_url(url: str, limit: int = SHORT_URL_CHARS) -> str:
    """A URL for an error line: no scheme, and its query cut with "…" when too long."""
    parts = urlsplit(url)
    text = f"{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "") if parts.netloc else url
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_detail(body: bytes) -> str:
    """The server's own words about an error: a WordPress REST error's code and message, or an
    HTML page's title; empty when it gave none."""
    text = body[:65536].decode("utf-8", errors="replace").strip()
    words = ""
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            message = re.sub(r"<[^>]+>", " ", str(data.get("message") or ""))
            words = ": ".join(w for w in (str(data.get("code") or ""), message) if w)
    else:
        found = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        words = html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))) if found else ""
    words = " ".join(words.split())
    return words if len(words) <= DETAIL_CHARS else words[: DETAIL_CHARS - 1] + "…"


def status_reason(status: int) -> str:
    """ "HTTP 404 Not Found" """
    try:
        return f"HTTP {status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def user_agent(site_url: str, configured: str = "") -> str:
    """The configured User-Agent, else one naming the project, its version and who runs it."""
    return configured or f"newsletter/{__version__} (briefs collector; +{site_url})"


@dataclass(frozen=True)
class Response:
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    def text(self) -> str:
        charset = "utf-8"
        for part in self.headers.get("Content-Type", "").split(";")[1:]:
            key, _, value = part.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds to wait: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


@dataclass
class Fetcher:
    """HTTP for one source. `validators` ({url: {"etag", "last_modified"}}) are read from and
    written back to the store by the caller; `requests` counts every request sent, retries included."""

    timeout: float
    max_bytes: int
    retries: int
    agent: str
    validators: dict[str, dict[str, str]] = field(default_factory=dict)
    # (user, password) for HTTP Basic auth (WordPress application passwords), or None.
    auth: tuple[str, str] | None = None
    backoff_base: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    on_request: Callable[[str], None] | None = None
    requests: int = 0
    # Validators of the URLs this run asked for, and whether any answer was not a 304:
    # when everything was unchanged, the old validators stay as they were.
    used_validators: dict[str, dict[str, str]] = field(default_factory=dict)
    changed: bool = False

    def __post_init__(self) -> None:
        self.session = requests.Session()
        self.session.headers["User-Agent"] = self.agent
        self.session.auth = self.auth

    def close(self) -> None:
        self.session.close()

    def get(self, url: str, params: Mapping[str, Any] | None = None, *, accept: str = "*/*",
            keep_body: bool = False, conditional: bool = True) -> Response:
        """GET `url`; a 304 answer is returned as is (status 304, empty body).

        `conditional=False` neither sends nor remembers validators: for answers the caller
        cannot do without (a page of a walk, whose body a 304 would not give).

        `keep_body` remembers a small body with the validators, so a 304 still gives the
        caller the body (for lookups such as WordPress term ids that a run cannot do without).

        Raises SourceError for anything that is not a usable answer: a 4xx, a 5xx after the
        retries, a timeout, a refused connection, a body over the size cap.
        """
        full_url = requests.Request("GET", url, params=params).prepare().url or url
        headers = {"Accept": accept}
        known = self.validators.get(full_url, {}) if conditional else {}
        if known.get("etag"):
            headers["If-None-Match"] = known["etag"]
        if known.get("last_modified"):
            headers["If-Modified-Since"] = known["last_modified"]
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._once(full_url, headers)
            except requests.Timeout as exc:
                # A server that hangs once will likely hang again: do not multiply the wait.
                raise SourceError(f"no answer within {self.timeout:g}s ({type(exc).__name__}): "
                                  f"{short_url(full_url)}") from exc
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                if attempt > self.retries:
                    raise SourceError(f"cannot connect, {_reason(exc)}: {short_url(full_url)}") from exc
                self.sleep(self._backoff(attempt, None))
                continue
            if response.status in RETRY_STATUSES:
                asked = retry_after_seconds(response.headers.get("Retry-After"))
                if asked is not None and asked > MAX_RETRY_WAIT:
                    until = datetime.now(timezone.utc) + timedelta(seconds=asked)
                    raise Deferred(
                        f"{status_reason(response.status)} asking us to retry in {asked:.0f} s, beyond the "
                        f"{MAX_RETRY_WAIT:.0f} s retry budget; deferred until {until:%Y-%m-%d %H:%M:%S}Z: "
                        f"{short_url(full_url)}", until)
                if attempt <= self.retries:
                    self.sleep(self._backoff(attempt, response.headers.get("Retry-After")))
                    continue
            break
        if response.not_modified:
            self.used_validators[full_url] = dict(known)
            if keep_body and "body" in known:
                return Response(url=response.url, status=304, headers=response.headers, body=known["body"].encode())
            return response
        self.changed = True
        if response.status >= 400:
            tries = f" after {attempt} attempts" if attempt > 1 else ""
            detail = error_detail(response.body)
            detail = f" ({detail})" if detail else ""
            raise StatusError(f"{status_reason(response.status)}{tries}{detail}: {short_url(full_url)}",
                              response.status, full_url)
        fresh = {k: v for k, v in (("etag", response.headers.get("ETag")),
                                   ("last_modified", response.headers.get("Last-Modified"))) if v}
        if not conditional:
            fresh = {}
        elif keep_body:
            # Without the body a 304 would leave the caller with nothing: ask in full next time.
            fresh = {**fresh, "body": response.text()} if fresh and len(response.body) <= KEEP_BODY_LIMIT else {}
        if fresh:
            self.used_validators[full_url] = fresh
        return response

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        asked = retry_after_seconds(retry_after)
        if asked is not None:
            return min(asked, MAX_RETRY_WAIT)
        return min(self.backoff_base * 2 ** (attempt - 1), MAX_BACKOFF)

    def next_validators(self) -> dict[str, dict[str, str]]:
        """What to remember for the next run: this run's validators, or the old ones if nothing changed."""
        return self.used_validators if self.changed else self.validators

    def _once(self, url: str, headers: dict[str, str]) -> Response:
        self.requests += 1
        if self.on_request:
            self.on_request(url)
        deadline = time.monotonic() + self.timeout
        with self.session.get(url, headers=headers, timeout=(self.timeout, self.timeout), stream=True,
                              allow_redirects=True) as raw:
            declared = raw.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise SourceError(f"body of {int(declared):,} bytes is over the {self.max_bytes:,}-byte cap: "
                                  f"{short_url(url)}")
            body = bytearray()
            if raw.status_code != 304:
                try:
                    # read1 returns what has arrived, so the deadline is checked even when bytes trickle in.
                    while chunk := raw.raw.read1(CHUNK, decode_content=True):
                        body += chunk
                        if len(body) > self.max_bytes:
                            raise SourceError(f"body is over the {self.max_bytes:,}-byte cap, stopped reading: "
                                              f"{short_url(url)}")
                        if time.monotonic() > deadline:
                            raise SourceError(f"body not received within {self.timeout:g}s: {short_url(url)}")
                except urllib3.exceptions.ReadTimeoutError as exc:
                    raise requests.Timeout(str(exc)) from exc
                except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError) as exc:
                    raise requests.ConnectionError(str(exc)) from exc
            return Response(url=raw.url, status=raw.status_code, headers=raw.headers, body=bytes(body))


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "Connection reset", "Connection aborted",
                   "RemoteDisconnected"):
        if marker in text:
            return marker.lower() if marker != "RemoteDisconnected" else "the server closed the connection"
    return type(exc).__name__
