"""Subscribers, their consent, and the suppression list that wins over everything.

The delivery stage uses `audience`, `suppress` and `record_bounce`; the CLI and the web
pages use the registry and the CSV import/export.
"""

from newsletter.subscribers.audience import audience
from newsletter.subscribers.suppression import record_bounce, suppress

__all__ = ["audience", "record_bounce", "suppress"]
