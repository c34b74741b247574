"""Who a message goes to: the only subscriber fields rendering and transports may see."""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.errors import RecipientError

# RFC 6531: an address with non-ASCII characters before the @ travels only over SMTPUTF8, which
# this job does not speak; an internationalised domain has an ASCII (IDNA) form and travels in it.
NEEDS_SMTPUTF8 = ("{email}: the part before the @ has characters outside ASCII, and such an address "
                  "needs SMTPUTF8 (RFC 6531), which newsletter does not send")


@dataclass(frozen=True)
class Recipient:
    id: int | None  # subscriber id; None for a one-off test address (`send --to`)
    email: str
    name: str = ""
    language: str = ""


def wire_address(email: str) -> str:
    """`email` as it goes in RCPT TO and To: itself when ASCII, else with its domain in IDNA
    form (ana@xn--bcher-kva.de). RecipientError when it cannot be written in ASCII."""
    if email.isascii():
        return email
    # Loaded only for the rare non-ASCII address: a send worker otherwise never needs it.
    from email_validator import EmailNotValidError, validate_email

    try:
        ascii_email = validate_email(email, check_deliverability=False).ascii_email
    except EmailNotValidError as exc:
        raise RecipientError(f"{email}: not a valid email address: {exc}") from exc
    if ascii_email is None:
        raise RecipientError(NEEDS_SMTPUTF8.format(email=email))
    return ascii_email
