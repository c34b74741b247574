"""Open the transport the config names: the only place that knows every kind.

Every rule about the transport's settings (TLS modes, credentials in the environment, provider
fields, EHLO name, certificate files) was checked when the config loaded
(`config.check_transport`), so opening one in a send worker cannot fail for a reason the
config already showed.
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Any

from newsletter.config import Config, sender_domain, transport_secret
from newsletter.send.transport import Transport

if TYPE_CHECKING:
    import ssl
    from pathlib import Path

    from newsletter.send.smtp import SMTPTransport

# Each kind's class, by module and name: a send worker imports only its own transport's module
# (an SMTP sender never loads `requests`, which the HTTP providers need).
KINDS = {"outbox": ("newsletter.send.transport", "OutboxTransport"), "smtp": ("newsletter.send.smtp", "SMTPTransport"),
         "postmark": ("newsletter.send.providers", "PostmarkTransport"),
         "sendgrid": ("newsletter.send.providers", "SendGridTransport"),
         "mailgun": ("newsletter.send.providers", "MailgunTransport")}


def transport_class(kind: str) -> Any:
    module, name = KINDS[kind]
    return getattr(importlib.import_module(module), name)


def batch_limit(kind: str) -> int:
    """Most envelopes one `send` call of this kind of transport takes."""
    return transport_class(kind).batch_limit


def personalises(kind: str) -> bool:
    """Whether this kind of transport builds each copy itself from a template (HTTP providers)."""
    return transport_class(kind).personalises


@functools.lru_cache(maxsize=4)
def _tls_context(ca_file: Path | None, client: tuple[Path, Path | None] | None) -> ssl.SSLContext:
    """One context per process for the same files: each loads the system's CAs (about 1 MB), and
    the connections of a send worker can share one (an SSLContext is safe across threads)."""
    from newsletter.send.smtp import tls_context

    return tls_context(ca_file, client)


def _smtp(config: Config) -> SMTPTransport:
    from newsletter.send.smtp import SMTPTransport

    t = config.transport
    client = (config.resolve(t.client_cert), config.resolve(t.client_key) if t.client_key else None) \
        if t.client_cert else None
    # A connection without TLS (a relay on this host) needs no context at all.
    context = _tls_context(config.resolve(t.ca_file) if t.ca_file else None, client) if t.starttls or t.ssl else None
    return SMTPTransport(t.host, t.port, ehlo_name=t.ehlo_name or sender_domain(config), starttls=t.starttls,
                         implicit_tls=t.ssl, username=t.username, password=transport_secret(t),
                         timeout=t.timeout_seconds, tls_context=context)


def open_transport(config: Config) -> Transport:
    t = config.transport
    if t.kind == "outbox":
        return transport_class("outbox")(config.resolve(t.outbox_dir))
    if t.kind == "smtp":
        return _smtp(config)
    cls = transport_class(t.kind)
    token = transport_secret(t)
    common = {"api_url": t.api_url, "timeout": t.timeout_seconds}
    if t.kind == "postmark":
        return cls(token, message_stream=t.message_stream, **common)
    if t.kind == "sendgrid":
        return cls(token, **common)
    return cls(token, domain=t.domain, **common)
