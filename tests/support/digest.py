"""Briefs and configs for digest tests: our own writing, in the shapes the publisher's briefs have."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from newsletter import config as config_module
from newsletter.briefs import Brief
from newsletter.config import Config
from tests.support.configs import base_config, write_config

CREATED = datetime(2026, 3, 5, 12, 0, tzinfo=timezone.utc)

_COUNTRIES = ["colombia", "mexico", "venezuela", "ecuador", "honduras", "guatemala", "peru", "brazil"]
_LEDE = (
    "<p>Authorities in {place} seized {n} tonnes of cocaine hidden in a shipment of bananas bound for a "
    "European port, the largest haul reported in the region this year, according to a statement from the "
    "attorney general's office on Tuesday.</p>"
    "<p>Investigators said the drugs belonged to a network that moves shipments through private port "
    "terminals with the help of customs officials, three of whom were <a href=\"/news/arrests-{n}/\">arrested</a> "
    "in raids carried out in two cities.</p>"
)
_ANALYSIS = (
    "<p>The seizure shows how trafficking networks in {place} keep adapting to pressure on traditional "
    "routes. Container traffic has become the main way to move cocaine to Europe, and corruption inside "
    "ports allows loads to pass inspections that look rigorous on paper.</p>"
    "<p>Large seizures rarely dent the business. Groups spread their loads across many containers, "
    "accepting the loss of some as a cost of doing business, and the officials arrested are usually "
    "easy to replace. What matters more is whether prosecutors follow the money to the companies that "
    "rent the terminals and move the payments.</p>"
    "<p>Past cases suggest they seldom do. Investigations tend to stop at the level of the port workers, "
    "leaving the brokers who organise the shipments free to set up again under new names.</p>"
)


def brief(i: int = 1, **changes: object) -> Brief:
    place = _COUNTRIES[i % len(_COUNTRIES)]
    published = CREATED - timedelta(hours=i)
    values: dict[str, object] = dict(
        id=i,
        source="site-en",
        key=str(1000 + i),
        url=f"https://briefs.example.org/news/brief-number-{i}/",
        title=f"Record cocaine seizure number {i} exposes port corruption in {place.title()}",
        published_at=published,
        modified_at=published,
        language="en",
        authors=("Ana Ruiz", "Ben Ode"),
        countries=(place,),
        tags=("Cocaine", "Ports"),
        lede=_LEDE.format(place=place.title(), n=i + 2),
        analysis=_ANALYSIS.format(place=place.title()),
    )
    values.update(changes)
    return Brief(**values)  # type: ignore[arg-type]


def briefs(count: int, **changes: object) -> list[Brief]:
    return [brief(i, **changes) for i in range(1, count + 1)]


def digest_config(tmp_path: Path, store_url: str, **publication: object) -> Config:
    """A config with an English and a Spanish edition, written to disk and loaded like the CLI does."""
    data = base_config(store_url)
    data["publication"].update({
        "donate_params": {"utm_source": "newsletter", "utm_campaign": "digest"},
        "unsubscribe_mailto": "unsubscribe@example.org",
        "feedback_id_sender": "crimebriefs",
        "reply_to": "Crime Briefs Desk <desk@example.org>",
    })
    data["publication"].update(publication)
    data["editions"] = [
        {"name": "daily-en", "language": "en", "title": "Crime Briefs Daily", "timezone": "America/Bogota"},
        {"name": "weekly-es", "language": "es", "title": "Crime Briefs Semanal", "timezone": "America/Bogota"},
    ]
    return config_module.load(write_config(tmp_path, data))
