"""The store: briefs, subscribers, mailings and the delivery ledger, in SQLite or PostgreSQL."""

from newsletter.store.db import open_store, upgrade, utcnow
from newsletter.store import schema

__all__ = ["open_store", "upgrade", "utcnow", "schema"]
