"""For feed tests: a site config with an English and a Spanish source, briefs in the store, jing."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import feedparser
import pytest
import sqlalchemy as sa
from lxml import etree

from newsletter import briefs
from newsletter.config import Config, load
from tests.support.configs import base_config, write_config

SITE = "https://briefs.example.org"
PUBLIC = "https://news.example.org"
START = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
ATOM = "{http://www.w3.org/2005/Atom}"


def site_config(directory: Path, store_url: str, **feed: Any) -> Config:
    data = base_config(store_url)
    data["sources"] = [
        {"name": "site-en", "kind": "wordpress", "url": SITE, "language": "en"},
        {"name": "site-es", "kind": "wordpress", "url": "https://es.briefs.example.org", "language": "es"},
    ]
    data["feed"] = {"output_dir": "public/feeds", **feed}
    return load(write_config(directory, data))


def sample(n: int, **changes: Any) -> briefs.Brief:
    """Brief number `n`, published `n` hours after START; Spanish briefs come from the Spanish source."""
    language = changes.get("language", "en")
    at = START + timedelta(hours=n)
    values: dict[str, Any] = dict(
        source=f"site-{language}",
        key=str(1000 + n),
        url=f"{SITE}/news/brief-{n}/" if language == "en" else f"https://es.briefs.example.org/noticias/{n}/",
        title=f"Brief number {n} on cocaine routes",
        published_at=at,
        modified_at=at,
        language=language,
        authors=("Ana Ruiz", "Ben Ode"),
        countries=("colombia",),
        tags=("Coca", "ELN"),
        lede=f"<p>Police seized {n} tonnes in the port. The haul was the largest this year.</p>",
        analysis="<p>The seizure shows a route that has moved north. Traffickers adapt fast.</p>",
    )
    values.update(changes)
    return briefs.Brief(**values)


def store(engine: sa.Engine, *items: briefs.Brief) -> None:
    with engine.begin() as conn:
        for item in items:
            briefs.upsert(conn, item, site_url=SITE)


def parse(path: Path) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


def xml(path: Path) -> etree._Element:
    return etree.fromstring(path.read_bytes())


def links(element: etree._Element) -> dict[str, str]:
    """rel -> href of an Atom element's own links."""
    return {link.get("rel", "alternate"): link.get("href") for link in element.findall(f"{ATOM}link")}


def assert_valid_atom(schema: Path, paths: list[Path]) -> None:
    """Validate against the RFC 4287 RELAX NG schema with jing (Debian package jing)."""
    if shutil.which("jing") is None:
        pytest.fail("jing is not installed (apt-get install jing)")
    proc = subprocess.run(["jing", "-c", str(schema), *map(str, paths)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"not valid Atom:\n{proc.stdout}{proc.stderr}"
