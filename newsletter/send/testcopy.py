"""A test copy: one mailing (stored, or a draft) sent to one address, outside the ledger."""

from __future__ import annotations

import secrets

from newsletter.config import Config
from newsletter.digest import MailingContent, MessageFactory
from newsletter.recipients import Recipient
from newsletter.send.envelopes import envelope, provider_template
from newsletter.send.transport import Result
from newsletter.send.transports import open_transport


def send_test(config: Config, mailing: MailingContent, email: str) -> Result:
    """Send one copy of `mailing` to `email` as a test; raises the transport's error when refused."""
    # Each test copy is a copy of its own (an outbox file, a Message-ID), never one a delivery gets.
    key = f"test-{'draft' if mailing.id is None else mailing.id}-{secrets.token_hex(6)}"
    factory = MessageFactory(config, mailing, test=True)
    transport = open_transport(config)
    try:
        template = provider_template(factory) if transport.personalises else None
        (result,) = transport.send([envelope(factory, template, Recipient(None, email), key)])
    finally:
        transport.close()
    if not result.ok:
        raise result.error
    return result
