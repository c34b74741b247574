"""The bounce mailbox parser against DSNs, ARF reports, non-standard bounces and auto-replies."""

from __future__ import annotations

import pytest

from newsletter.bounces import verp
from newsletter.bounces.parse import MAX_MESSAGE_BYTES, Kind, classify
from tests.support.bounces import bounce

KEY = b"k" * 32
RETURN_PATH = "bounces@news.example.org"


@pytest.mark.parametrize("name, kind, status", [
    ("postfix_hard", Kind.HARD, "5.1.1"),
    ("gmail_hard", Kind.HARD, "5.1.1"),
    ("exchange_hard", Kind.HARD, "5.1.10"),
    ("postfix_delayed", Kind.SOFT, "4.4.1"),
])
def test_delivery_status_notifications_name_the_recipient_and_the_status(name: str, kind: Kind, status: str) -> None:
    report = classify(bounce(name, rcpt="Gone.Reader@Example.net"))
    assert report.kind is kind
    assert [(f.email, f.kind, f.status) for f in report.failures] == [("Gone.Reader@Example.net", kind, status)]
    assert report.original_message_id == "<1.0123456789abcdef01234567@example.org>"


@pytest.mark.parametrize("name", ["exim_plain", "qmail_plain"])
def test_non_standard_bounces_are_found_by_mailmans_detectors(name: str) -> None:
    report = classify(bounce(name))
    assert report.kind is Kind.HARD
    assert [f.email for f in report.failures] == ["gone@example.net"]


def test_arf_complaint_names_the_reader_and_our_envelope_sender() -> None:
    address = verp.address(KEY, RETURN_PATH, 42)
    report = classify(bounce("yahoo_arf", verp=address))
    assert report.kind is Kind.COMPLAINT
    assert [f.email for f in report.failures] == ["gone@example.net"]
    assert verp.delivery_id(KEY, RETURN_PATH, report.original_sender) == 42


def test_a_redacted_complaint_still_carries_the_return_path_of_our_copy() -> None:
    address = verp.address(KEY, RETURN_PATH, 7)
    report = classify(bounce("microsoft_arf_redacted", verp=address))
    assert report.kind is Kind.COMPLAINT
    assert verp.delivery_id(KEY, RETURN_PATH, report.original_sender) == 7
    assert report.original_message_id == "<1.0123456789abcdef01234567@example.org>"


@pytest.mark.parametrize("name", ["out_of_office", "vacation_legacy"])
def test_auto_replies_are_recognised_and_name_no_failure(name: str) -> None:
    report = classify(bounce(name))
    assert report.kind is Kind.AUTO_REPLY and report.failures == ()


def test_a_persons_reply_is_left_for_a_person() -> None:
    report = classify(bounce("person"))
    assert report.kind is Kind.UNKNOWN and report.reason


def test_malformed_and_huge_messages_are_unknown_not_errors() -> None:
    assert classify(bounce("malformed")).kind is Kind.UNKNOWN
    huge = b"Subject: big\r\nMessage-ID: <big@x>\r\n\r\n" + b"x" * (MAX_MESSAGE_BYTES + 1)
    report = classify(huge)
    assert report.kind is Kind.UNKNOWN and "larger" in report.reason
    assert classify(b"").kind is Kind.UNKNOWN
    assert classify(b"\x00" * 1000).kind is Kind.UNKNOWN


def test_the_same_message_twice_has_one_identity() -> None:
    assert classify(bounce("postfix_hard")).identity == classify(bounce("postfix_hard")).identity
    assert classify(bounce("postfix_hard")).identity != classify(bounce("gmail_hard")).identity


def test_verp_token_round_trip_refuses_forgeries_and_survives_case_folding() -> None:
    address = verp.address(KEY, RETURN_PATH, 123456)
    local, _, domain = address.partition("@")
    assert local.startswith("bounces+") and domain == "news.example.org"
    assert verp.delivery_id(KEY, RETURN_PATH, address) == 123456
    assert verp.delivery_id(KEY, RETURN_PATH, address.upper()) == 123456
    assert verp.delivery_id(KEY, RETURN_PATH, f"<{address}>") == 123456
    assert verp.delivery_id(b"another key" * 3, RETURN_PATH, address) is None
    tampered = address.replace(address[10], "a" if address[10] != "a" else "b", 1)
    assert verp.delivery_id(KEY, RETURN_PATH, tampered) is None
    assert verp.delivery_id(KEY, RETURN_PATH, "bounces@news.example.org") is None
    assert verp.delivery_id(KEY, RETURN_PATH, address.replace("news.example.org", "evil.example")) is None
