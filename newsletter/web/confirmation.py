"""The double opt-in email: built from `templates/web/confirm_email.*`, sent through the transport."""

from __future__ import annotations

import logging
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import jinja2

from newsletter.config import Config
from newsletter.errors import NewsletterError, TransportError
from newsletter.send.transport import Envelope, MessageTemplate, envelope_sender
from newsletter.send.transports import open_transport

log = logging.getLogger(__name__)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render(env: jinja2.Environment, config: Config, words: dict[str, str], language: str,
           link: str) -> tuple[str, str, str]:
    """(subject, text, html) of the confirmation email: pure."""
    publication = config.publication
    subject = _one_line(words["email_subject"].format(publication=publication.name))
    body = words["email_body"].format(publication=publication.name, hours=config.web.confirm_hours)
    context = {"t": words, "lang": language, "subject": subject, "body": body, "link": link,
               "publication": publication}
    return subject, env.get_template("confirm_email.txt").render(context), \
        env.get_template("confirm_email.html").render(context)


def build(config: Config, to: str, subject: str, text: str, html: str) -> bytes:
    message = EmailMessage()
    message["From"] = config.publication.sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=envelope_sender(config.publication.sender).rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"
    if config.publication.reply_to:
        message["Reply-To"] = config.publication.reply_to
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    # CRLF line ends: SMTP servers count a bare-LF message as one over-long line.
    return message.as_bytes(policy=policy.SMTP)


def send(config: Config, to: str, subject: str, text: str, html: str, *, key: str) -> bool:
    """Hand the email to the configured transport; False (logged) when it was not accepted."""
    sender = envelope_sender(config.publication.sender)
    try:
        transport = open_transport(config)
    except NewsletterError as exc:  # a transport config error (e.g. a missing API token) or a dead outbox
        log.error("confirmation email to a subscriber not sent: %s", exc)
        return False
    try:
        if transport.personalises:
            envelope = Envelope(sender, to, key=key,
                                template=MessageTemplate(config.publication.sender, subject, html, text))
        else:
            envelope = Envelope(sender, to, build(config, to, subject, text, html), key=key)
        [result] = transport.send([envelope])
    except TransportError as exc:
        log.error("confirmation email not sent: %s", exc)
        return False
    finally:
        transport.close()
    if not result.ok:
        log.error("confirmation email not accepted: %s", result.error)
    return result.ok
