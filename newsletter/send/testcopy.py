"""A test copy: one mailing (stored, or a draft) sent to one address, outside the ledger."""

from __future__ import annotations

from newsletter.config import Config
from newsletter.digest import MailingContent, MessageFactory
from newsletter.recipients import Recipient
from newsletter.send.envelopes import envelope, provider_template
from newsletter.send.transport import Result
from newsletter.send.transports import open_transport


def send_test(config: Config, mailing: MailingContent, email: str) -> Result:
    """Send one copy of `mailing` to `email` as a test; raises the transport's error when refused."""
    factory = MessageFactory(config, mailing)
    transport = open_transport(config)
    try:
        template = provider_template(factory) if transport.personalises else None
        (result,) = transport.send([envelope(factory, template, Recipient(None, email), f"test-{mailing.id}")])
    finally:
        transport.close()
    if not result.ok:
        raise result.error
    return result
