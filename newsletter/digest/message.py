"""Each subscriber's copy of a mailing: complete RFC 5322 bytes, built by substitution only.

`MessageFactory` does the expensive work once per mailing: it encodes the common headers
and quoted-printable encodes the text and HTML parts around their placeholders, leaving a
list of byte strings with gaps. A copy is then the gaps' values (two signed tokens, a
greeting) quoted-printable encoded on lines of their own (soft line breaks around each gap
keep every line short) and one `b"".join`: tens of microseconds for a 40 KB message.

The same work is done once for what the copy becomes on its way out: the byte strings are
also kept dot-stuffed for SMTP's DATA (`build_data`), and with DKIM the common headers are
kept in canonical form (`Signer.header_plan`), so signing a copy costs the hash of its body,
the canonical form of its three own headers and the signature itself.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any, Mapping
from urllib.parse import urlsplit

from newsletter import tokens
from newsletter.config import Config, mailbox
from newsletter.digest import placeholders
from newsletter.digest.dkim import (
    ED25519_SHA256, RSA_SHA256, DkimKeyError, Signer, header_fields, load_key, relaxed_field,
)
from newsletter.errors import RecipientError, RenderError
from newsletter.recipients import Recipient, wire_address
from newsletter.sanitize import clean_text

# The headers every signature covers (RFC 8058 requires List-Unsubscribe-Post among them).
DKIM_HEADERS = (
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"mime-version", b"content-type",
    b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"list-archive", b"feedback-id",
)
# Listed in the signature once more than they occur (RFC 6376 section 8.15): a copy of one of
# these added above ours (a second From or Subject) breaks the signature instead of riding on it.
DKIM_OVERSIGNED = frozenset({
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id", b"list-unsubscribe",
    b"list-unsubscribe-post",
})
_CRLF = b"\r\n"
_SOFT_BREAK = b"=\r\n"
_QP_LITERAL = re.compile(r"(?:[!-<>-~]|[ \t](?=[!-~]))*")
# SMTP's end of data; RFC 5321 section 4.5.2 has a line starting with "." sent with one more.
_END_OF_DATA = b".\r\n"
# The headers each copy has of its own, in the order they follow the common ones.
_PERSONAL = ("To", "Message-ID", "List-Unsubscribe")
_FEEDBACK_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Subscriber id in the tokens of a one-off test address: links work but name nobody.
TEST_RECIPIENT_ID = 0


@dataclass(frozen=True)
class MailingContent:
    """What building messages needs of a mailings row."""

    id: int | None  # None: a draft of the next mailing, which has no id, archive copy or deliveries yet
    edition: str
    language: str
    subject: str
    preheader: str
    html: str
    text: str
    content_hash: str
    created_at: datetime
    brief_ids: tuple[int, ...] = ()

    @classmethod
    def from_row(cls, row: Any) -> "MailingContent":
        if row.html is None or row.text is None:
            raise RenderError(f"mailing {row.id} has no rendered content yet")
        return cls(
            id=row.id, edition=row.edition, language=row.language, subject=row.subject,
            preheader=row.preheader or "", html=row.html, text=row.text, content_hash=row.content_hash or "",
            created_at=row.created_at, brief_ids=tuple(row.brief_ids or ()),
        )


@dataclass(frozen=True)
class MessageTemplate:
    """A mailing with its placeholders (`placeholders.PATTERN`) left in, as HTTP providers that
    personalise take it; `placeholders.fill` makes a recipient's copy of any of its fields."""

    sender: str  # the From header value
    subject: str
    html: str
    text: str
    headers: Mapping[str, str] = field(default_factory=dict)  # common to every copy, unencoded


def message_id_digest(key: bytes, mailing_id: int, who: str) -> str:
    """The keyed hash in a delivery's Message-ID (`who`: the subscriber id, or the address of a
    copy to no subscriber): stable across retries, and a bounce quoting it proves which copy it was."""
    return hmac.digest(key, f"message-id\0{mailing_id}\0{who}".encode(), "sha256").hex()


class MessageFactory:
    """Builds each recipient's complete message from one rendered mailing.

    A delivery's Message-ID is derived from the mailing and the subscriber, so a retried
    delivery keeps it. A `test` copy (a test send, a preview) and any copy of a draft get a
    new random one at every build: no two such copies, and none of them and a delivery, share one.
    """

    def __init__(self, config: Config, mailing: Any, *, now: datetime | None = None, test: bool = False) -> None:
        self.mailing = mailing if isinstance(mailing, MailingContent) else MailingContent.from_row(mailing)
        self._test = test or self.mailing.id is None
        pub = config.publication
        self._key = config.secret_key()
        self._public_url = pub.public_url.rstrip("/")
        self._language = self.mailing.language
        sender_name, sender_address = parseaddr(pub.sender)
        self.envelope_sender = sender_address
        self._domain = sender_address.rpartition("@")[2].lower()
        self._mailto = _bare_address(pub.unsubscribe_mailto)
        self.subject = clean_text(self.mailing.subject)
        title = next((clean_text(e.title) for e in config.editions if e.name == self.mailing.edition), "")
        list_host = urlsplit(self._public_url).hostname or self._domain
        feedback_sender = _FEEDBACK_UNSAFE.sub("-", pub.feedback_id_sender or self._domain)
        # What names this mailing in headers; a draft has no id and no web copy (no List-Archive).
        self._label = "draft" if self.mailing.id is None else str(self.mailing.id)
        self._headers: dict[str, str] = {
            "From": formataddr((clean_text(sender_name), sender_address)),
            "Subject": self.subject,
            # RFC 5322 section 3.3: a numeric zone ("+0000"), not the obsolete "GMT".
            "Date": format_datetime((now or datetime.now(timezone.utc)).astimezone(timezone.utc)),
            "List-Id": formataddr((title or self.mailing.edition, f"{self.mailing.edition}.{list_host}")),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Feedback-ID": f"{self._label}:{_FEEDBACK_UNSAFE.sub('-', self.mailing.edition)}:digest:{feedback_sender}",
        }
        if self.mailing.id is not None:
            # RFC 2369: the list's archive, so the edition's listing (where this mailing is), not one copy.
            self._headers["List-Archive"] = f"<{self._public_url}/archive/{self.mailing.edition}/>"
        if pub.reply_to:
            reply_name, reply_address = parseaddr(pub.reply_to)
            self._headers["Reply-To"] = formataddr((clean_text(reply_name), reply_address))
        self._boundary = f"=_nl_{self.mailing.content_hash[:24] or self.mailing.id}"
        self._common = b"".join(_encode_header(k, v) for k, v in self._headers.items())
        self._mime = (
            b"MIME-Version: 1.0\r\n"
            + f'Content-Type: multipart/alternative; boundary="{self._boundary}"\r\n\r\n'.encode()
        )
        part = 'Content-Type: text/{}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
        self._pieces: list[bytes | str] = []
        self._append(f"--{self._boundary}\r\n{part.format('plain')}".encode())
        self._append_body(self.mailing.text)
        self._append(f"\r\n--{self._boundary}\r\n{part.format('html')}".encode())
        self._append_body(self.mailing.html)
        self._append(f"\r\n--{self._boundary}--\r\n".encode())
        self._gaps = {p for p in self._pieces if isinstance(p, str)}
        # The SMTP form: each static piece dot-stuffed here once. No static piece starts a line
        # (the first starts with the boundary's "--", the others with a soft break's "="), so
        # only a gap's value can put a "." at a line's start where two pieces meet (`_stuffed`).
        self._data_pieces = [p if isinstance(p, str) else p.replace(b"\n.", b"\n..") for p in self._pieces]
        signed = [name.lower().encode() for name in (*self._headers, *_PERSONAL, "MIME-Version", "Content-Type")]
        self._dkim = _dkim_signer(config, _dkim_header_list(signed))
        if self._dkim is not None:
            # Slots 0, 1, 2: the copy's own headers (`_PERSONAL`), the rest canonical once for all.
            fields: list[tuple[bytes, bytes | int]] = [*header_fields(self._common)]
            fields += [(name.lower().encode(), slot) for slot, name in enumerate(_PERSONAL)]
            fields += header_fields(self._mime)
            self._header_plan = self._dkim.header_plan(fields)
            # The body hash's state after the first piece (up to the first gap), taken on per copy.
            self._body_prefix = hashlib.sha256(self._pieces[0])  # type: ignore[arg-type]

    def build(self, recipient: Recipient) -> bytes:
        """The recipient's complete RFC 5322 message."""
        return self._copy(recipient, data=False)

    def build_data(self, recipient: Recipient) -> bytes:
        """The recipient's message as SMTP's DATA carries it: `smtp.dot_stuff(build(recipient))`, with
        the stuffing of everything but the recipient's own values done once per mailing."""
        return self._copy(recipient, data=True)

    def _copy(self, recipient: Recipient, *, data: bool) -> bytes:
        values = self.variables(recipient)
        encoded = {name: _qp(values[name]) for name in self._gaps}
        personal = [_encode_header(k, v) for k, v in self._recipient_headers(recipient, values).items()]
        if data:
            body = [p if p.__class__ is bytes else _stuffed(encoded[p]) for p in self._data_pieces]  # type: ignore[index]
            body.append(_END_OF_DATA)
        else:
            body = [p if p.__class__ is bytes else encoded[p] for p in self._pieces]  # type: ignore[index]
        signature = b""
        if self._dkim is not None:
            # The body as DKIM's simple canonicalisation has it (it ends in one CRLF already), unstuffed.
            digest = self._body_prefix.copy()
            for p in self._pieces[1:]:
                digest.update(p if p.__class__ is bytes else encoded[p])  # type: ignore[arg-type, index]
            canonical = [p if p.__class__ is bytes else relaxed_field(personal[p]) for p in self._header_plan]  # type: ignore[index]
            signature = self._dkim.sign_canonical(b"".join(canonical), digest.digest())  # type: ignore[arg-type]
        return b"".join([signature, self._common, *personal, self._mime, *body])  # type: ignore[list-item]

    def template(self) -> MessageTemplate:
        return MessageTemplate(self._headers["From"], self.subject, self.mailing.html, self.mailing.text,
                               dict(self._headers))

    def variables(self, recipient: Recipient) -> dict[str, str]:
        """Every placeholder's value for this recipient (the `_html` ones escaped)."""
        subscriber = TEST_RECIPIENT_ID if recipient.id is None else recipient.id
        name = clean_text(recipient.name)
        return placeholders.values(
            name=name,
            greeting=placeholders.greeting(name, self._language),
            unsubscribe_url=f"{self._public_url}/unsubscribe/{tokens.make(self._key, 'unsubscribe', subscriber)}",
            preferences_url=f"{self._public_url}/preferences/{tokens.make(self._key, 'preferences', subscriber)}",
        )

    def recipient_headers(self, recipient: Recipient) -> dict[str, str]:
        """To, Message-ID and List-Unsubscribe of this recipient's copy, unencoded."""
        return self._recipient_headers(recipient, self.variables(recipient))

    def parts(self, recipient: Recipient) -> tuple[str, str]:
        """The recipient's (html, text), for previews."""
        values = self.variables(recipient)
        return placeholders.fill(self.mailing.html, values), placeholders.fill(self.mailing.text, values)

    def _recipient_headers(self, recipient: Recipient, values: Mapping[str, str]) -> dict[str, str]:
        if not _single_address(recipient.email):
            raise RecipientError(f"recipient address {recipient.email!r} is not a single email address")
        address = wire_address(recipient.email)
        if self._test:
            message_id = f"<test.{self._label}.{secrets.token_hex(12)}@{self._domain}>"
        else:
            who = recipient.email if recipient.id is None else str(recipient.id)
            message_id = f"<{self.mailing.id}.{message_id_digest(self._key, self.mailing.id, who)[:24]}@{self._domain}>"
        unsubscribe = f"<{values['unsubscribe_url']}>"
        if self._mailto:
            token = values["unsubscribe_url"].rpartition("/")[2]
            unsubscribe += f", <mailto:{self._mailto}?subject=unsubscribe%20{token}>"
        return {
            "To": formataddr((clean_text(recipient.name), address)),
            "Message-ID": message_id,
            "List-Unsubscribe": unsubscribe,
        }

    def _append(self, data: bytes) -> None:
        if self._pieces and isinstance(self._pieces[-1], bytes):
            self._pieces[-1] += data
        else:
            self._pieces.append(data)

    def _append_body(self, rendered: str) -> None:
        for i, piece in enumerate(placeholders.split(rendered)):
            if i % 2:
                # The value goes on a line of its own, between soft line breaks.
                self._append(_SOFT_BREAK)
                self._pieces.append(piece)
                self._pieces.append(_SOFT_BREAK)
            else:
                self._append(_qp(piece.replace("\r\n", "\n")))


def _stuffed(encoded: bytes) -> bytes:
    """A gap's encoded value dot-stuffed; it starts a line of its own (after a soft break)."""
    if encoded[:1] == b".":
        encoded = b"." + encoded
    return encoded.replace(b"\n.", b"\n..") if b"\n." in encoded else encoded


def _literal(text: str) -> bool:
    """`_QP_LITERAL.fullmatch(text)`: printable ASCII but "=", a space or tab only before such a
    character. String tests answer for most values (a regex costs more than the rest of a gap)."""
    if text.isascii() and text.isprintable():  # no tab, CR, LF or other control character
        return "=" not in text and "  " not in text and not text.endswith(" ")
    return _QP_LITERAL.fullmatch(text) is not None


def _single_address(address: str) -> bool:
    """No whitespace or control character, an "@": what can go in To and RCPT TO as it is."""
    if not address or "@" not in address:
        return False
    # isprintable() is False for every control and whitespace character but " ": one C call for
    # the usual address; the character loop only for the rare one it leaves in doubt.
    if address.isprintable() and " " not in address:
        return True
    return not any(c.isspace() or ord(c) < 32 for c in address)


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends (hard breaks stay hard, long lines get soft breaks)."""
    if _literal(text):
        # Most values (token URLs, plain names) are their own encoding: only long lines need soft breaks.
        data = text.encode()  # ASCII: a byte a character
        if len(data) < 76:
            return data
        return _SOFT_BREAK.join([data[i:i + 75] for i in range(0, len(data), 75)])
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", _CRLF)


def _encode_header(name: str, value: str) -> bytes:
    """One header field, RFC 2047-encoded when not ASCII, folded; never a CR or LF from the value."""
    # str.split() also breaks on CR, LF and the other line separators, so none survives.
    value = " ".join(value.split())
    if value.isascii():
        if name == "List-Unsubscribe":
            value = value.replace(">, <", ">,\r\n <")
        if len(name) + len(value) <= 76 or name == "List-Unsubscribe":
            return f"{name}: {value}\r\n".encode()
    encoded = Header(value, "us-ascii" if value.isascii() else "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n".encode()


def _bare_address(value: str) -> str:
    """The address of a mailbox the config already validated (`config.mailbox`), or ''."""
    found = mailbox(value) if value else None
    return found[1] if found else ""


def _dkim_header_list(present: list[bytes]) -> list[bytes]:
    """The signature's h= list: each header signed as often as it occurs, the over-signed ones once more."""
    names: list[bytes] = []
    for name in DKIM_HEADERS:
        names += [name] * (present.count(name) + (name in DKIM_OVERSIGNED))
    return names


def _dkim_signer(config: Config, header_list: list[bytes]) -> Signer | None:
    """A signer with the configured keys, or None; the config's load proved the keys sign (`config.check_dkim`)."""
    settings = config.dkim
    if not settings.private_key_path:
        return None
    keys = [(settings.private_key_path, RSA_SHA256, settings.selector)]
    if settings.ed25519_private_key_path:
        keys.append((settings.ed25519_private_key_path, ED25519_SHA256, settings.ed25519_selector))
    loaded = []
    for relative, algorithm, selector in keys:
        path = config.resolve(relative)
        try:
            loaded.append(load_key(path.read_bytes(), algorithm, selector))
        except (OSError, DkimKeyError) as exc:
            raise RenderError(f"dkim: {path} could be used when the config loaded and cannot now: {exc}") from exc
    return Signer(settings.domain, loaded, header_list)
