"""Open the transport the config names: the only place that knows every kind."""

from __future__ import annotations

from newsletter.config import Config, require_secret
from newsletter.errors import ConfigError
from newsletter.send.providers import MailgunTransport, PostmarkTransport, SendGridTransport
from newsletter.send.smtp import SMTPTransport
from newsletter.send.transport import OutboxTransport, Transport


KINDS = {"outbox": OutboxTransport, "smtp": SMTPTransport, "postmark": PostmarkTransport,
         "sendgrid": SendGridTransport, "mailgun": MailgunTransport}


def batch_limit(kind: str) -> int:
    """Most envelopes one `send` call of this kind of transport takes."""
    return KINDS[kind].batch_limit


def open_transport(config: Config) -> Transport:
    t = config.transport
    if t.kind == "outbox":
        return OutboxTransport(config.resolve(t.outbox_dir))
    if t.kind == "smtp":
        if t.starttls and t.ssl:
            raise ConfigError("transport.starttls and transport.ssl are both true: expected one of them "
                              "(starttls upgrades a plain connection, ssl is TLS from the start)")
        password = ""
        if t.username:
            if not t.password_env:
                raise ConfigError(f"transport.password_env: missing; expected the name of the environment "
                                  f"variable holding the SMTP password of {t.username!r}")
            password = require_secret(t.password_env, f"holds the SMTP password of {t.username!r}")
        return SMTPTransport(t.host, t.port, starttls=t.starttls, implicit_tls=t.ssl, username=t.username,
                             password=password, timeout=t.timeout_seconds)
    if not t.api_token_env:
        raise ConfigError(f"transport.api_token_env: missing; expected the name of the environment variable "
                          f"holding the {t.kind} API token")
    token = require_secret(t.api_token_env, f"holds the {t.kind} API token")
    common = {"api_url": t.api_url, "timeout": t.timeout_seconds}
    if t.kind == "postmark":
        return PostmarkTransport(token, message_stream=t.message_stream, **common)
    if t.kind == "sendgrid":
        return SendGridTransport(token, **common)
    if not t.domain:
        raise ConfigError("transport.domain: missing; expected the Mailgun sending domain, e.g. 'mg.example.org'")
    return MailgunTransport(token, domain=t.domain, **common)
