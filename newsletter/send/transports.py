"""Open the transport the config names: the only place that knows every kind.

Every rule about the transport's settings (TLS modes, credentials in the environment, provider
fields, EHLO name, certificate files) was checked when the config loaded
(`config.check_transport`), so opening one in a send worker cannot fail for a reason the
config already showed.
"""

from __future__ import annotations

from newsletter.config import Config, sender_domain, transport_secret
from newsletter.send.providers import MailgunTransport, PostmarkTransport, SendGridTransport
from newsletter.send.smtp import SMTPTransport, tls_context
from newsletter.send.transport import OutboxTransport, Transport


KINDS = {"outbox": OutboxTransport, "smtp": SMTPTransport, "postmark": PostmarkTransport,
         "sendgrid": SendGridTransport, "mailgun": MailgunTransport}


def batch_limit(kind: str) -> int:
    """Most envelopes one `send` call of this kind of transport takes."""
    return KINDS[kind].batch_limit


def _smtp(config: Config) -> SMTPTransport:
    t = config.transport
    client = (config.resolve(t.client_cert), config.resolve(t.client_key) if t.client_key else None) \
        if t.client_cert else None
    context = tls_context(config.resolve(t.ca_file) if t.ca_file else None, client)
    return SMTPTransport(t.host, t.port, ehlo_name=t.ehlo_name or sender_domain(config), starttls=t.starttls,
                         implicit_tls=t.ssl, username=t.username, password=transport_secret(t),
                         timeout=t.timeout_seconds, tls_context=context)


def open_transport(config: Config) -> Transport:
    t = config.transport
    if t.kind == "outbox":
        return OutboxTransport(config.resolve(t.outbox_dir))
    if t.kind == "smtp":
        return _smtp(config)
    token = transport_secret(t)
    common = {"api_url": t.api_url, "timeout": t.timeout_seconds}
    if t.kind == "postmark":
        return PostmarkTransport(token, message_stream=t.message_stream, **common)
    if t.kind == "sendgrid":
        return SendGridTransport(token, **common)
    return MailgunTransport(token, domain=t.domain, **common)
