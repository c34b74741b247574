"""The emails the subscriber pages send: the double opt-in link and the data-rights link.

Both are built from `templates/web/confirm_email.*` and sent through the transport. The
confirmation emails are sent by `Mailer`, a thread of `serve` that works through the queued
subscribe requests away from the web answers, so how long the answer takes never depends on
whether (or to whom) an email goes out.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import jinja2

import sqlalchemy as sa

from newsletter import tokens
from newsletter.config import Config
from newsletter.errors import ConfigError, NewsletterError, RecipientError, TransportError
from newsletter.recipients import wire_address
from newsletter.store import utcnow
from newsletter.subscribers import data_links, limits
from newsletter.subscribers import requests as subscribe_requests
from newsletter.web.i18n import Messages
from newsletter.send.transport import Envelope, MessageTemplate, envelope_sender
from newsletter.send.transports import open_transport

log = logging.getLogger(__name__)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render(env: jinja2.Environment, config: Config, words: dict[str, str], language: str,
           link: str, *, kind: str = "confirm") -> tuple[str, str, str]:
    """(subject, text, html) of the confirmation (`confirm`) or data-link (`data`) email: pure."""
    publication = config.publication
    prefix = "email" if kind == "confirm" else "data_email"
    subject = _one_line(words[f"{prefix}_subject"].format(publication=publication.name))
    body = words[f"{prefix}_body"].format(publication=publication.name, hours=config.web.confirm_hours)
    context = {"t": words, "lang": language, "subject": subject, "body": body, "link": link,
               "publication": publication, "button": words[f"{prefix}_button" if kind == "data" else "confirm_button"],
               "ignore": words[f"{prefix}_ignore"]}
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
        to = wire_address(to)
    except RecipientError as exc:
        log.error("confirmation email to a subscriber not sent: %s", exc)
        return False
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


# How often the mailer looks for queued requests: a confirmation goes out within about this time.
POLL_SECONDS = 0.5
PURGE_SECONDS = 60.0


class Mailer:
    """Sends confirmation links for queued subscribe requests, and data links on demand."""

    def __init__(self, config: Config, engine: sa.Engine, env: jinja2.Environment, messages: Messages) -> None:
        self.config = config
        self.engine = engine
        self.env = env
        self.messages = messages
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._purged_at = 0.0

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="confirmation-mailer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        key_missing = False
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.work_once()
                key_missing = False
            except ConfigError as exc:  # no signing key: /health says not ready; requests wait queued
                if not key_missing:
                    log.error("confirmation emails wait: %s", exc)
                key_missing = True
            except Exception:  # a store outage must not end the thread: the next round retries
                log.exception("confirmation mailer round failed")

    def work_once(self, now: datetime | None = None) -> int:
        """Decide and mail every queued request; purge expired ones now and then. Returns how many mailed."""
        now = now or utcnow()
        key = self.config.secret_key()
        if now.timestamp() - self._purged_at > PURGE_SECONDS:
            with self.engine.begin() as conn:
                subscribe_requests.purge(conn, now)
                data_links.purge(conn, now)
                limits.purge(conn, now)
            self._purged_at = now.timestamp()
        with self.engine.begin() as conn:
            claimed = subscribe_requests.claim(conn)
        mailed = 0
        for request in claimed:
            with self.engine.begin() as conn:
                outcome = subscribe_requests.decide(conn, request, limits.subject_key(key, request.email),
                                                    self.config.web.confirmations_per_address, now)
            if outcome != subscribe_requests.MAILED:
                continue
            language = request.page_language
            token = tokens.make(key, "subscribe_request", request.id, int(request.expires_at.timestamp()))
            link = self.config.publication.public_url.rstrip("/") + f"/confirm/{token}?lang={language}"
            subject, text, html = render(self.env, self.config, self.messages.words(language), language, link)
            mailed += send(self.config, request.email, subject, text, html, key=f"confirm-{request.id}")
        return mailed

    def send_data_link(self, to: str, language: str, link: str) -> None:
        subject, text, html = render(self.env, self.config, self.messages.words(language), language, link, kind="data")
        send(self.config, to, subject, text, html, key=f"data-{utcnow().timestamp()}")
