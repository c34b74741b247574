"""The dry run: render every copy a send would hand over now and count them; change nothing.

It reads the mailing's unfinished deliveries page by page with the ledger's own pick of who a
claim would hand out (`ledger.unfinished_page`), so it counts what a real send would send.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from newsletter.config import Config
from newsletter.digest import MailingContent
from newsletter.send import ledger
from newsletter.send.copies import CopyFactories

PAGE = 1000


@dataclass(frozen=True)
class DryRunCount:
    would_send: int  # copies rendered
    suppressed: int  # deliveries a send would mark suppressed instead


def render_remaining(config: Config, engine: sa.Engine, mailing_id: int) -> DryRunCount:
    """Build every remaining copy of the mailing (so a template error shows now) and count them."""
    with engine.connect() as conn:
        mailing = MailingContent.from_row(ledger.mailing(conn, mailing_id))

    def load(key: str) -> MailingContent:
        with engine.connect() as conn:
            return ledger.stored_copy(conn, mailing, key)

    copies = CopyFactories(config, mailing, load, provider=False)
    would_send = suppressed = 0
    after = 0
    while True:
        with engine.connect() as conn:
            page = ledger.unfinished_page(conn, mailing_id, after, PAGE)
        if not page.last_id:
            return DryRunCount(would_send, suppressed)
        after = page.last_id
        suppressed += page.suppressed
        for delivery in page.deliveries:
            copies.get(delivery.content_key)[0].build(delivery.recipient)
            would_send += 1
