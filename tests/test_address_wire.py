"""Addresses on the wire: an internationalised domain travels in its IDNA form; an address with
non-ASCII characters before the @ needs SMTPUTF8, which the job does not send, so the list refuses
it at the door (import, `subscribers add`) with a reason, and the sender fails only that copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.errors import RecipientError, SubscriberError
from newsletter.recipients import wire_address
from newsletter.subscribers.address import needs_smtputf8, normalise, subscribable
from tests.support.cli import run_cli
from tests.support.configs import base_config, write_config


def test_wire_address_keeps_ascii_and_writes_an_idn_domain_in_idna() -> None:
    assert wire_address("reader@example.org") == "reader@example.org"
    assert wire_address(normalise("Ana@Bücher.de")) == "ana@xn--bcher-kva.de"
    # Typed in its ASCII form, the list keeps the Unicode domain; on the wire it is ASCII again.
    assert wire_address(normalise("ana@xn--bcher-kva.de")) == "ana@xn--bcher-kva.de"
    with pytest.raises(RecipientError, match="SMTPUTF8"):
        wire_address("josé@example.com")


def test_the_list_refuses_an_address_that_needs_smtputf8_and_takes_an_idn_domain() -> None:
    assert subscribable("Ana@Bücher.de") == "ana@bücher.de"
    assert not needs_smtputf8("ana@bücher.de") and needs_smtputf8("josé@example.com")
    with pytest.raises(SubscriberError, match="before the @ has characters outside ASCII.*use an address written in ASCII"):
        subscribable("José@example.com")


def test_import_and_add_name_the_address_that_mail_cannot_reach(tmp_path: Path, store_url: str) -> None:
    data = base_config(store_url)
    data["editions"] = [{"name": "daily-en", "language": "en"}]
    config = write_config(tmp_path, data)
    listing = tmp_path / "list.csv"
    listing.write_text("email,name\nana@bücher.de,Ana\njosé@example.com,José\nlee@example.org,Lee\n", encoding="utf-8")
    imported = run_cli("subscribers", "import", str(listing), config=config)
    assert imported.returncode == 1
    [error] = imported.stderr.strip().splitlines()
    assert "list.csv:3:" in error and "josé@example.com" in error and "SMTPUTF8" in error
    assert "2 added" in imported.stdout
    added = run_cli("subscribers", "add", "josé@example.org", config=config)
    assert added.returncode != 0 and "SMTPUTF8" in added.stderr
    listed = run_cli("subscribers", "export", str(tmp_path / "out.csv"), config=config)
    assert listed.returncode == 0, listed.stderr
    exported = (tmp_path / "out.csv").read_text(encoding="utf-8")
    assert "ana@bücher.de" in exported and "lee@example.org" in exported and "josé" not in exported
