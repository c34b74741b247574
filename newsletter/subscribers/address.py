"""Email addresses as the list keeps them: validated and normalised once, at the edge."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from newsletter.errors import SubscriberError
from newsletter.recipients import NEEDS_SMTPUTF8

# The everyday address: an RFC 5322 dot-atom of ASCII characters before the @-sign and an ASCII
# host name after it. email-validator accepts such an address exactly when it accepts its domain
# and the address is at most 254 bytes, and normalises it to local part + "@" + its domain; the
# domain's verdict is cached, so a list of a million addresses on a few thousand domains asks the
# library once per domain. Anything else (quotes, Unicode, a display name) goes to the library
# whole. tests/test_subscribers_address.py checks the agreement on a varied corpus.
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_EVERYDAY = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@([A-Za-z0-9.\-]+)\Z")
_MAX_BYTES = 254  # email-validator's limit on the whole address (RFC 5321 4.5.3.1.3)
_DOMAINS_CACHED = 65536


@lru_cache(maxsize=_DOMAINS_CACHED)
def _domain(part: str) -> tuple[str, str] | None:
    """email-validator's verdict on a domain: (normalised form, IDNA ASCII form), or None."""
    try:
        result = validate_email("a@" + part, check_deliverability=False)
    except EmailNotValidError:
        return None
    return result.domain, result.ascii_domain


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
    everyday = _EVERYDAY.match(text)
    if everyday is not None:
        local, part = everyday.groups()
        domain = _domain(part)
        if domain is not None and len(local) + 1 + max(len(part), len(domain[0].encode()), len(domain[1])) <= _MAX_BYTES:
            return (local + "@" + domain[0]).lower()
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


def needs_smtputf8(email: str) -> bool:
    """True when a normalised address has characters outside ASCII before the @: mail to it
    needs SMTPUTF8, which this job does not send (an internationalised domain is fine)."""
    return not email.rpartition("@")[0].isascii()


def subscribable(address: str) -> str:
    """`normalise`, for an address joining the list: also refused when mail cannot reach it."""
    email = normalise(address)
    if needs_smtputf8(email):
        raise SubscriberError(NEEDS_SMTPUTF8.format(email=repr(email)) + "; use an address written in ASCII")
    return email
