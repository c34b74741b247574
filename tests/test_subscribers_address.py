"""`normalise` answers exactly as email-validator does, on its fast path for everyday addresses too.

The fast path (a dot-atom local part, an ASCII host name, the domain's verdict cached) must accept
what the library accepts, reject what it rejects (with the library's message) and give the same
normalised form. The corpus mixes hand-picked edge cases with seeded random strings."""

from __future__ import annotations

import random

import pytest
from email_validator import EmailNotValidError, validate_email

from newsletter.errors import SubscriberError
from newsletter.subscribers import address
from newsletter.subscribers.address import normalise

ATEXT = "abcxyzABCXYZ0189!#$%&'*+-/=?^_`{|}~"


def library(text: str) -> tuple[bool, str]:
    """What normalise answered before the fast path: the library on every address."""
    text = text.strip()
    if not text:
        return False, "the email address is empty"
    if len(text) > 320:
        return False, "the email address is longer than 320 characters"
    try:
        return True, validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        return False, f"{text!r} is not a valid email address: {exc}"


def ours(text: str) -> tuple[bool, str]:
    try:
        return True, normalise(text)
    except SubscriberError as exc:
        return False, str(exc)


def edge_cases() -> list[str]:
    cases = [
        "ana@example.org", "Ana.Maria@Example.ORG", "a.b.c@d.e.f.org", "x+tag@sub.example.co.uk",
        "o'brien@example.ie", "{weird}~|`^@example.org", "-@example.org", "a@b.co", "1@2.com",
        "a..b@example.org", ".a@example.org", "a.@example.org", "a@.example.org", "a@example..org",
        "a@example.org.", "a@example", "a@localhost", "a@example.test", "a@x.local", "a@x.onion",
        "a@x.invalid", "a@1.in-addr.arpa", "a@example.123", "a@123.com", "a@1.2.3.4", "a@[192.0.2.1]",
        "a@-example.org", "a@example-.org", "a@ex--ample.org", "a@ex_ample.org", "a@xn--bcher-kva.example",
        "a@XN--BCHER-KVA.EXAMPLE", "a@xn--zz.org", "a@xn--.org", "a@xn--a.org", "a@example.xn--p1ai",
        "a@" + "l" * 63 + ".org", "a@" + "l" * 64 + ".org", "a@" + ".".join(["abcdefghi"] * 25) + ".org",
        "a@" + ".".join(["abcdefghi"] * 26) + ".org", "l" * 64 + "@example.org", "l" * 65 + "@example.org",
        "l" * 200 + "@example.org", "l" * 242 + "@example.org", "l" * 243 + "@example.org", "l" * 300 + "@e.org",
        "a@b@example.org", "@example.org", "a@", "a", "", "   ", " ana@example.org ", "ana @example.org",
        "ana@ example.org", '"ana"@example.org', '"a b"@example.org', "Ana <ana@example.org>",
        "<ana@example.org>", "ana@exämple.org", "änä@example.org", "ana@例え.jp", "ana@example.org\n",
        "ana\t@example.org", "ana@example.org;bo@example.org", "ana,bo@example.org", "ana(c)@example.org",
        "ana@example.o", "ana@example.c0m", "ana@e.x-", "postmaster@Example.org", "POSTMASTER@example.org",
        "a@exam ple.org", "a@example.org\u200b", "a\u0301@example.org", "ａ@example.org",
    ]
    # Lengths around 254 bytes with a domain whose IDNA and Unicode forms differ in length.
    for n in range(170, 200):
        cases.append("l" * n + "@" + "xn--bcher-kva." + ".".join(["abcdefghij"] * 5) + ".example")
    return cases


def random_cases(count: int) -> list[str]:
    rng = random.Random(16)
    alphabet = ATEXT + "..@@-" + ' "<>()[],;:\\é中\u00a0'
    domains = ["example.org", "Example.COM", "mail.example.net", "xn--bcher-kva.example", "localhost", "b.test",
               "sub-domain.example.co.uk", "EXAMPLE.ORG", "e.x", "x" * 70 + ".org", "a-.org", "1.2"]
    cases = []
    for _ in range(count):
        if rng.random() < 0.6:
            chars = ATEXT + "." if rng.random() < 0.7 else ATEXT + alphabet
            local = "".join(rng.choice(chars) for _ in range(rng.randint(0, 70)))
            cases.append(local + "@" + rng.choice(domains))
        else:
            cases.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
    return cases


@pytest.mark.parametrize("corpus", ["edge", "random"])
def test_normalise_agrees_with_email_validator_on_a_varied_corpus(corpus: str) -> None:
    texts = edge_cases() if corpus == "edge" else random_cases(20000)
    address._domain.cache_clear()
    disagreements = [(t, library(t), ours(t)) for t in texts if library(t) != ours(t)]
    assert disagreements == []
    answers = [library(t) for t in texts]
    assert sum(ok for ok, _ in answers) > len(texts) // 5 and sum(not ok for ok, _ in answers) > len(texts) // 10
    # The fast path did the work for the everyday ones: the library saw each domain once.
    info = address._domain.cache_info()
    assert info.hits > len(texts) // 4 and info.currsize < 200


def test_everyday_addresses_are_lower_cased_and_idna_decoded() -> None:
    assert normalise(" Ana.Maria@Example.ORG ") == "ana.maria@example.org"
    assert normalise("Kim@XN--BCHER-KVA.example") == "kim@bücher.example"
    with pytest.raises(SubscriberError, match="is not a valid email address"):
        normalise("a..b@example.org")
