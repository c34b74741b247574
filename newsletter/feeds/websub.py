"""WebSub (W3C) publish pings: tell the configured hub which feeds changed, so readers hear at once.

A ping that fails is logged and reported, never fatal: readers still poll the feed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import requests

from newsletter import __version__

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10.0


@dataclass
class PingResult:
    pinged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # feed URL -> what went wrong


def user_agent(public_url: str, configured: str = "") -> str:
    return configured or f"newsletter/{__version__} (feeds; +{public_url})"


def ping(hub: str, feed_urls: list[str], *, user_agent: str) -> PingResult:
    """POST hub.mode=publish with hub.url for each feed; a hub answers 2xx when it accepted."""
    result = PingResult()
    with requests.Session() as session:
        session.headers["User-Agent"] = user_agent
        for url in feed_urls:
            try:
                response = session.post(
                    hub, data={"hub.mode": "publish", "hub.url": url}, timeout=TIMEOUT_SECONDS
                )
            except requests.RequestException as exc:
                problem = f"{exc.__class__.__name__}: {exc}"
            else:
                if 200 <= response.status_code < 300:
                    result.pinged.append(url)
                    continue
                problem = f"hub answered HTTP {response.status_code}"
            result.failed[url] = problem
            log.warning("WebSub publish ping failed", extra={"hub": hub, "feed": url, "problem": problem})
    return result
