"""Which requests to a tracked link are people: HEAD requests, known bots and link scanners are not.

Link scanners (mail security gateways, Outlook's Safe Links, antivirus in the client) fetch
every link of a message within seconds of its arrival. A person does not open three different
links of one mailing within a few seconds; a scanner does, so such a burst is filed as
`scanner`, including the clicks of it that were already counted. To see a burst the filter
remembers, in memory only and for `BURST_SECONDS`, a keyed hash of the client's address and
user agent (the key is random per process and never stored), so nothing identifies anyone
afterwards and nothing is written about the client.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import date

BURST_SECONDS = 10.0
# Distinct links of one mailing, from one client within BURST_SECONDS, that make a scanner.
BURST_LINKS = 3
# Lower-cased pieces of user agents that are programs, not people reading mail.
BOT_AGENTS = (
    "bot", "crawl", "spider", "slurp", "scan", "preview", "headlesschrome", "phantomjs", "python-requests",
    "python-urllib", "aiohttp", "httpx", "curl/", "wget/", "go-http-client", "java/", "okhttp", "libwww",
    "httpclient", "barracuda", "proofpoint", "mimecast", "safelinks", "existence discovery", "facebookexternalhit",
    "whatsapp", "slackbot", "discordbot", "skypeuripreview", "validator", "monitor",
)


def is_bot(user_agent: str) -> bool:
    """A known program's user agent, or none at all (browsers always send one)."""
    agent = user_agent.strip().lower()
    return not agent or any(piece in agent for piece in BOT_AGENTS)


@dataclass(frozen=True)
class Seen:
    at: float
    mailing_id: int
    link_no: int
    day: date
    counted: bool


class ClickFilter:
    """Judges each request: `counted`, `head`, `bot` or `scanner`, and which earlier ones to re-file."""

    def __init__(self, *, burst_seconds: float = BURST_SECONDS, burst_links: int = BURST_LINKS) -> None:
        self._salt = os.urandom(16)
        self._burst_seconds = burst_seconds
        self._burst_links = burst_links
        self._recent: dict[bytes, deque[Seen]] = {}
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    def judge(self, *, method: str, user_agent: str, client: str, mailing_id: int, link_no: int, day: date,
              now: float | None = None) -> tuple[str, list[Seen]]:
        """The verdict for this request, and the earlier clicks of its burst to move from counted to scanner."""
        if method == "HEAD":
            return "head", []
        if is_bot(user_agent):
            return "bot", []
        now = time.monotonic() if now is None else now
        who = hashlib.blake2b(f"{client}\0{user_agent}".encode(), key=self._salt, digest_size=16).digest()
        with self._lock:
            self._sweep(now)
            seen = self._recent.setdefault(who, deque())
            while seen and now - seen[0].at > self._burst_seconds:
                seen.popleft()
            same = [s for s in seen if s.mailing_id == mailing_id]
            links = {s.link_no for s in same} | {link_no}
            scanner = len(links) >= self._burst_links
            refile = [s for s in same if s.counted] if scanner else []
            if refile:
                kept = [s for s in seen if not (s.mailing_id == mailing_id and s.counted)]
                seen.clear()
                seen.extend(kept)
                seen.extend(Seen(s.at, s.mailing_id, s.link_no, s.day, False) for s in refile)
            seen.append(Seen(now, mailing_id, link_no, day, not scanner))
        return ("scanner" if scanner else "counted"), refile

    def _sweep(self, now: float) -> None:
        """Forget clients not seen within the window (at most once a window), so memory stays small."""
        if now - self._last_sweep < self._burst_seconds:
            return
        self._last_sweep = now
        for who in [w for w, seen in self._recent.items() if not seen or now - seen[-1].at > self._burst_seconds]:
            del self._recent[who]
