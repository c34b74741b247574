"""Signed tokens: bound to one subscriber and one purpose, opaque, tamper-evident, expiring."""

from __future__ import annotations

import pytest

from newsletter import tokens
from newsletter.tokens import TokenError

KEY = b"k" * 32


def test_round_trip_and_determinism() -> None:
    token = tokens.make(KEY, "unsubscribe", 12345)
    assert tokens.read(KEY, "unsubscribe", token) == 12345
    assert tokens.make(KEY, "unsubscribe", 12345) == token
    assert "12345" not in token


def test_bound_to_purpose_and_key() -> None:
    token = tokens.make(KEY, "unsubscribe", 7)
    with pytest.raises(TokenError, match="not valid"):
        tokens.read(KEY, "preferences", token)
    with pytest.raises(TokenError, match="not valid"):
        tokens.read(b"other key", "unsubscribe", token)


def test_every_single_character_change_is_refused() -> None:
    token = tokens.make(KEY, "subscribe_request", 99)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, ch in enumerate(token):
        forged = token[:i] + alphabet[(alphabet.index(ch) + 1) % len(alphabet)] + token[i + 1:]
        with pytest.raises(TokenError):
            tokens.read(KEY, "subscribe_request", forged)


@pytest.mark.parametrize("garbage", ["", "x", "!!!!", "A" * 65, "%00%0d%0a"])
def test_garbage_is_refused_clearly(garbage: str) -> None:
    with pytest.raises(TokenError, match="incomplete or damaged|not valid"):
        tokens.read(KEY, "unsubscribe", garbage)


def test_expiry() -> None:
    token = tokens.make(KEY, "subscribe_request", 5, expires_at=1_000)
    assert tokens.read(KEY, "subscribe_request", token, now=999) == 5
    with pytest.raises(TokenError, match="expired"):
        tokens.read(KEY, "subscribe_request", token, now=1_001)


def test_a_token_of_an_old_purpose_opens_nothing_under_a_new_meaning() -> None:
    # Confirmation and data links used to name a subscriber; now they name a request or a
    # single-use link. The purposes were renamed so that an old link cannot be read as a new one.
    with pytest.raises(ValueError, match="unknown token purpose"):
        tokens.make(KEY, "confirm", 1)
    with pytest.raises(ValueError, match="unknown token purpose"):
        tokens.make(KEY, "data", 1)
    for purpose in ("subscribe_request", "data_link"):
        with pytest.raises(tokens.TokenError):
            tokens.read(KEY, purpose, tokens.make(KEY, "preferences", 1))
