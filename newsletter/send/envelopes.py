"""Envelopes: one delivery's copy of a mailing as a transport takes it.

Message transports (outbox, SMTP) take the complete bytes of each copy; HTTP providers that
personalise server-side take the mailing's template once and each recipient's values.
"""

from __future__ import annotations

from dataclasses import replace

from newsletter.digest import MessageFactory, MessageTemplate
from newsletter.recipients import Recipient, wire_address
from newsletter.send.transport import Envelope

# Headers a provider writes itself from the call's fields (or must write, like its Message-ID).
PROVIDER_OWN_HEADERS = frozenset({"from", "to", "subject", "date", "message-id", "mime-version", "content-type"})


def provider_template(factory: MessageFactory) -> MessageTemplate:
    """The mailing as HTTP providers take it: one template with the digest's placeholders in."""
    t = factory.template()
    return replace(t, headers={k: v for k, v in t.headers.items() if k.lower() not in PROVIDER_OWN_HEADERS})


def provider_envelope(factory: MessageFactory, template: MessageTemplate, recipient: Recipient,
                      key: str) -> Envelope:
    """A recipient's placeholder values, and their own headers (List-Unsubscribe)."""
    values = factory.variables(recipient)
    headers = {k: v for k, v in factory.recipient_headers(recipient).items() if k.lower() not in PROVIDER_OWN_HEADERS}
    return Envelope(factory.envelope_sender, recipient.email, key=key, name=recipient.name, template=template,
                    variables=values, headers=headers)


def envelope(factory: MessageFactory, template: MessageTemplate | None, recipient: Recipient, key: str, *,
             data: bool = False) -> Envelope:
    """The recipient's envelope: provider-style when a template is given, else the complete message,
    or with `data` (for a transport that `takes_data`) the message as SMTP's DATA only.
    RecipientError when the recipient's address cannot go on the wire."""
    if not recipient.email.isascii():
        recipient = replace(recipient, email=wire_address(recipient.email))
    if template is not None:
        return provider_envelope(factory, template, recipient, key)
    if data:
        return Envelope(factory.envelope_sender, recipient.email, key=key, name=recipient.name,
                        data=factory.build_data(recipient))
    return Envelope(factory.envelope_sender, recipient.email, factory.build(recipient), key=key, name=recipient.name)
