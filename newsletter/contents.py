"""Per-reader copies of a mailing: which of its briefs each subscriber's copy carries.

A subscriber who chose countries gets the mailing's briefs tagged with one of them; one who
chose none gets them all. Each distinct set of briefs is rendered once (subject, preheader and
intro describe that set), its links made trackable, and frozen in `mailing_contents` under a
key derived from the set, when the mailing is created; a delivery names its copy by that key
(NULL: the whole mailing). A subscriber for whom nothing matches gets no copy: the delivery
is recorded as skipped, with the reason.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Iterable, Sequence

import sqlalchemy as sa

from newsletter import briefs as briefs_module
from newsletter.briefs import Brief
from newsletter.config import Config, EditionConfig
from newsletter.digest import MailingContent, RenderedMailing, render_mailing
from newsletter.errors import NewsletterError
from newsletter.send import ledger
from newsletter.states import DeliveryState
from newsletter.store import schema
from newsletter.subscribers.audience import Group, Plan
from newsletter.tracking import links as tracked_links
from newsletter.tracking.links import LinkBook


def content_key(brief_ids: Iterable[int]) -> str:
    """The key of a set of briefs: the same set, in any order, always has the same key."""
    material = ",".join(str(i) for i in sorted(set(brief_ids)))
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def briefs_for(briefs: Sequence[Brief], countries: Iterable[str]) -> list[Brief]:
    """The briefs a reader with these countries of interest gets (all of them when none), in order."""
    wanted = set(countries)
    if not wanted:
        return list(briefs)
    return [b for b in briefs if wanted.intersection(b.countries)]


def skip_reason(countries: Iterable[str]) -> str:
    return "no brief in the mailing is about the subscriber's countries (" + ", ".join(sorted(countries)) + ")"


def render_copy(config: Config, edition: EditionConfig, briefs: list[Brief], *, mailing_id: int,
                created_at: datetime, book: LinkBook | None) -> RenderedMailing:
    """One copy rendered, its links made trackable through `book` (when clicks are tracked) and
    the open pixel added (when opens are)."""
    rendered = render_mailing(config, edition, briefs, mailing_id=mailing_id, created_at=created_at)
    html, text = rendered.html, rendered.text
    if book is not None:
        html, text = tracked_links.rewrite(html, text, book)
    if config.tracking.opens:
        html = tracked_links.open_pixel(html, config.secret_key(), config.publication.public_url, mailing_id)
    if (html, text) == (rendered.html, rendered.text):
        return rendered
    digest = hashlib.sha256(
        json.dumps([rendered.subject, rendered.preheader, html, text], ensure_ascii=False).encode()).hexdigest()
    return RenderedMailing(rendered.subject, rendered.preheader, html, text, digest)


class Copies:
    """Plans each group of readers' copy of one mailing being created, and renders each distinct
    set of briefs once. Planning needs only the sets' keys, so the store can write the
    deliveries while `render` makes the copies (in another thread: it touches no connection)."""

    def __init__(self, config: Config, edition: EditionConfig, mailing_id: int, created_at: datetime,
                 briefs: Sequence[Brief], book: LinkBook | None) -> None:
        self._config = config
        self._edition = edition
        self._mailing_id = mailing_id
        self._created_at = created_at
        self._briefs = list(briefs)
        self._book = book
        self._whole = content_key(b.id for b in self._briefs if b.id is not None)
        self._by_countries: dict[frozenset[str], str | None] = {}
        self._to_render: dict[str, list[Brief]] = {}

    def plans(self, groups: Iterable[Group]) -> list[Plan]:
        """What each group of readers gets: their copy (by its key; `render` makes it), the whole
        mailing, or nothing (skipped, with the reason)."""
        return [self._plan(group) for group in groups]

    def _plan(self, group: Group) -> Plan:
        chosen = frozenset(group.countries)
        if chosen not in self._by_countries:
            self._by_countries[chosen] = self._key_for(chosen)
        key = self._by_countries[chosen]
        if key == "":
            return Plan(group, DeliveryState.SKIPPED, reason=skip_reason(chosen))
        return Plan(group, DeliveryState.PENDING, content_key=key)

    def _key_for(self, countries: frozenset[str]) -> str | None:
        """The copy's key; None for the whole mailing, "" when nothing matches."""
        subset = briefs_for(self._briefs, countries)
        if not subset:
            return ""
        key = content_key(b.id for b in subset if b.id is not None)
        if key == self._whole:
            return None
        self._to_render.setdefault(key, subset)
        return key

    def render(self) -> list[dict[str, object]]:
        """The `mailing_contents` rows of every copy the plans named, rendered (links added to
        the mailing's book); no store access, so it may run beside the deliveries' insert."""
        rows = []
        for key, subset in self._to_render.items():
            rendered = render_copy(self._config, self._edition, subset, mailing_id=self._mailing_id,
                                   created_at=self._created_at, book=self._book)
            rows.append(dict(mailing_id=self._mailing_id, key=key, brief_ids=[b.id for b in subset],
                             subject=rendered.subject, preheader=rendered.preheader, html=rendered.html,
                             text=rendered.text, content_hash=rendered.content_hash))
        return rows


def save(conn: sa.Connection, rows: list[dict[str, object]]) -> None:
    """Freeze the rendered copies (`Copies.render`) in `mailing_contents`."""
    if rows:
        conn.execute(schema.mailing_contents.insert(), rows)


class NothingForReader(NewsletterError):
    """The reader gets no copy of this mailing: none of its briefs is about their countries."""


def reader_copy(conn: sa.Connection, config: Config, edition: EditionConfig, mailing: MailingContent,
                subscriber_id: int | None, countries: Sequence[str]) -> MailingContent:
    """The copy of `mailing` this reader gets: what their delivery names when the mailing has one
    for them, else the copy their countries choose now (rendered here when nobody had that set)."""
    d = schema.deliveries
    if subscriber_id is not None:
        row = conn.execute(sa.select(d.c.state, d.c.last_error, d.c.content_key)
                           .where(d.c.mailing_id == mailing.id, d.c.subscriber_id == subscriber_id)).first()
        if row is not None:
            if row.state == "skipped":
                raise NothingForReader(f"mailing {mailing.id} has nothing for this subscriber: {row.last_error}")
            return ledger.stored_copy(conn, mailing, row.content_key)
    name = f"mailing {mailing.id}" if mailing.id is not None else "the next mailing"
    whole = briefs_module.by_ids(conn, list(mailing.brief_ids))
    subset = briefs_for(whole, countries)
    if not subset:
        raise NothingForReader(f"{name} has nothing for this subscriber: {skip_reason(countries)}")
    if len(subset) == len(whole):
        return mailing
    key = content_key(b.id for b in subset if b.id is not None)
    mc = schema.mailing_contents
    if conn.scalar(sa.select(mc.c.key).where(mc.c.mailing_id == mailing.id, mc.c.key == key)) is not None:
        return ledger.stored_copy(conn, mailing, key)
    rendered = render_mailing(config, edition, subset, mailing_id=mailing.id, created_at=mailing.created_at)
    return MailingContent(
        id=mailing.id, edition=mailing.edition, language=mailing.language, subject=rendered.subject,
        preheader=rendered.preheader, html=rendered.html, text=rendered.text, content_hash=rendered.content_hash,
        created_at=mailing.created_at, brief_ids=tuple(b.id for b in subset if b.id is not None),
    )
