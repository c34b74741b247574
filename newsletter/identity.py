"""Which published article a collected item is: canonical URLs and WordPress post ids. Pure.

One article reaches us through several sources (the REST API, the RSS feed, per-country
tag feeds, the article page); each names it a little differently. Two names are the same
article when their normalised URLs are equal, or when they carry the same WordPress post
id on the same site (the REST API's `id`, a feed's `?p=ID` guid, a page's shortlink).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that only say how a reader arrived, never which article it is.
_TRACKING = re.compile(r"^(?:utm_.*|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|_ga|_gl|ref|igshid|yclid)$",
                       re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_POST_ID = re.compile(r"^[1-9][0-9]{0,18}$")


def canonical_url(url: str) -> str:
    """`url` with scheme and host in lower case, no default port, no fragment, no tracking
    parameters, the other parameters sorted and no trailing slash on the path."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    path = parts.path.rstrip("/") or "/"
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k))
    return urlunsplit((scheme, host, path, urlencode(query), ""))


def site_of(url: str) -> str:
    """The WordPress site a URL belongs to, for matching post ids: host[:port] and path, no scheme."""
    canonical = urlsplit(canonical_url(url))
    return f"{canonical.netloc}{canonical.path.rstrip('/')}"


def post_id_of(url: str) -> tuple[str, int] | None:
    """(site, post id) of a WordPress `https://site/?p=ID` URL (a feed guid, a shortlink), else None."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    query = dict(parse_qsl(parts.query))
    if set(query) != {"p"} or not _POST_ID.match(query["p"]) or parts.scheme.lower() not in ("http", "https"):
        return None
    return site_of(urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))), int(query["p"])
