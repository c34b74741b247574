"""Email addresses as the list keeps them: validated and normalised once, at the edge."""

from __future__ import annotations

import hashlib

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import SubscriberError


def normalise(address: str) -> str:
    """The canonical form of `address` (lower-cased, domain IDNA-decoded), or SubscriberError.

    The local part is lower-cased too: mailbox providers treat it without case, and one
    person typing "Ana@" and "ana@" must stay one subscriber. No DNS look-up: importing a
    list must not depend on the network, and a dead domain shows up as a hard bounce anyway.
    """
    text = (address or "").strip()
    if not text:
        raise SubscriberError("the email address is empty")
    if len(text) > 320:
        raise SubscriberError("the email address is longer than 320 characters")
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise SubscriberError(f"{text!r} is not a valid email address: {exc}") from exc
    return result.normalized.lower()


def loose(address: str) -> str:
    """`normalise` when possible, else the trimmed text: for addresses that providers report back."""
    try:
        return normalise(address)
    except SubscriberError:
        return (address or "").strip()


def erased_key(address: str) -> str:
    """What an erased subscriber leaves in the suppression list: a one-way hash of the address.

    Unsalted SHA-256 on purpose: the key must survive a change of NEWSLETTER_SECRET_KEY, and
    it only has to answer "was this exact address erased?".
    """
    return "sha256:" + hashlib.sha256(address.casefold().encode("utf-8")).hexdigest()
