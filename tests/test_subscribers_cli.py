"""`newsletter subscribers ...` run as a subprocess against a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Iterable, Iterator

import pytest
import sqlalchemy as sa

from newsletter.cli import main
from newsletter.config import load
from newsletter.store import open_store, schema
from newsletter.subscribers import csvfile
from newsletter.subscribers.profile import Vocabulary
from tests.support.cli import run_cli, run_json
from tests.support.configs import base_config, write_config

ROOT = Path(__file__).resolve().parent.parent
EDITIONS = [{"name": "daily-en", "language": "en"}, {"name": "weekly-es", "language": "es"}]

GOOD_AND_BAD = """email,name,language,editions,countries,status,consent_at,consent_ip,consent_user_agent,form_version,confirmed_at
Lucia@Example.ORG,Lucía Gómez,es,weekly-es,Colombia;Venezuela,active,2026-03-01T14:05:00Z,203.0.113.7,Mozilla/5.0,subscribe-es-1,2026-03-01T14:09:12Z
not-an-address,Nobody,en,,,active,,,,,
sam@example.org,Sam,fr,,,active,,,,,
kim@example.org,Kim,en,daily-en,Narnia,active,,,,,
lee@example.org,Lee,en,,,active,yesterday,,,,
left@example.org,,en,,,unsubscribed,2025-01-01T00:00:00Z,,,,
lucia@example.org,Lucía again,es,,,active,,,,,
"""


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Path:
    data = base_config(store_url)
    data["editions"] = EDITIONS
    return write_config(tmp_path, data)


def rows(store_url: str, table: sa.Table) -> list[sa.Row]:
    engine = open_store(store_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(table)).all()
    finally:
        engine.dispose()


def test_import_adds_valid_rows_and_reports_bad_ones_by_line(config: Path, store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(GOOD_AND_BAD, encoding="utf-8")
    proc = run_cli("subscribers", "import", str(path), config=config)
    assert proc.returncode == 1, proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert [e.split(f"{path.name}:")[1].split(":")[0] for e in errors] == ["3", "4", "5", "6", "8"]
    assert "not-an-address" in errors[0] and "valid email" in errors[0]
    assert "language 'fr'" in errors[1]
    assert "'Narnia' is not a known country" in errors[2]
    assert "consent_at 'yesterday'" in errors[3]
    assert "already on line 2" in errors[4]
    assert "2 added" in proc.stdout
    subscribers = {r.email: r for r in rows(store_url, schema.subscribers)}
    assert set(subscribers) == {"lucia@example.org", "left@example.org"}
    lucia = subscribers["lucia@example.org"]
    assert (lucia.name, lucia.language, lucia.editions, lucia.countries, lucia.status) == \
        ("Lucía Gómez", "es", ["weekly-es"], ["colombia", "venezuela"], "active")
    [consent] = [c for c in rows(store_url, schema.consents) if c.subscriber_id == lucia.id]
    assert (consent.action, consent.ip, consent.form_version, consent.at.isoformat()) == \
        ("import", "203.0.113.7", "subscribe-es-1", "2026-03-01T14:05:00+00:00")
    assert {(s.email, s.reason) for s in rows(store_url, schema.suppressions)} == {("left@example.org", "unsubscribed")}


def test_import_never_reactivates_an_address_that_left(config: Path, store_url: str, tmp_path: Path) -> None:
    run_cli("subscribers", "add", "ana@example.org", config=config, check=True)
    run_cli("subscribers", "remove", "ana@example.org", config=config, check=True)
    path = tmp_path / "again.csv"
    path.write_text("email,status\nana@example.org,active\nbo@example.org,\n", encoding="utf-8")
    code, summary = run_json("subscribers", "import", str(path), config=config)
    assert code == 0
    assert summary == {"added": 1, "updated": 0, "kept_suppressed": 1, "invalid": []}
    proc = run_cli("subscribers", "add", "ana@example.org", config=config)
    assert proc.returncode != 0
    assert proc.stderr.strip() == ("newsletter: error: ana@example.org is suppressed (manual); "
                                   "it is never re-activated by an operator")
    code, shown = run_json("subscribers", "show", "ana@example.org", config=config)
    assert code == 0 and shown["status"] == "unsubscribed" and shown["suppressed"] == "manual"


def test_export_round_trips_through_import(config: Path, tmp_path: Path) -> None:
    run_cli("subscribers", "import", str(ROOT / "subscribers" / "example.csv"), config=config)
    run_cli("subscribers", "add", "cli@example.org", "--name", "Cli User", "--countries", "Perú, Haiti",
            config=config, check=True)
    first = tmp_path / "first.csv"
    run_cli("subscribers", "export", str(first), config=config, check=True)
    (tmp_path / "other").mkdir()
    fresh = f"sqlite:///{tmp_path / 'other' / 'store.sqlite3'}"
    other = write_config(tmp_path / "other", {**base_config(fresh), "editions": EDITIONS})
    run_cli("subscribers", "import", str(first), config=other, check=True)
    second = run_cli("subscribers", "export", config=other, check=True).stdout
    assert second == first.read_text(encoding="utf-8")
    exported = list(csv.DictReader(io.StringIO(second)))
    assert [r["email"] for r in exported] == ["maria.lopez@example.org", "j.smith@example.com",
                                              "left.us@example.net", "cli@example.org"]
    assert exported[3]["countries"] == "peru;haiti"
    code, as_json = run_json("subscribers", "export", config=other)
    assert code == 0 and as_json[0]["countries"] == ["colombia", "venezuela"]
    assert as_json[0]["consent_ip"] == "203.0.113.7"




def test_a_crash_halfway_through_an_import_leaves_nothing(config: Path, store_url: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.csv"
    path.write_text("email,name\n" + "".join(f"reader{i}@example.org,Reader {i}\n" for i in range(3000)),
                    encoding="utf-8")
    real = csvfile.import_rows

    def crash_after_writing(conn: sa.Connection, read: Iterable[csvfile.ImportRow | csvfile.Invalid],
                            source: str) -> csvfile.ImportSummary:
        real(conn, read, source)
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.subscribers)).scalar() == 3000
        raise RuntimeError("power cut")

    monkeypatch.setattr(csvfile, "import_rows", crash_after_writing)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-0123456789abcdefghijkl")
    with pytest.raises(RuntimeError, match="power cut"):
        main(["--config", str(config), "subscribers", "import", str(path)])
    assert rows(store_url, schema.subscribers) == []
    assert rows(store_url, schema.consents) == []


def test_import_of_many_rows_is_batched(config: Path, store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "many.csv"
    path.write_text("email,language,countries\n" + "".join(f"r{i}@example.org,en,Mexico\n" for i in range(20000)),
                    encoding="utf-8")
    started = time.monotonic()
    code, summary = run_json("subscribers", "import", str(path), config=config)
    elapsed = time.monotonic() - started
    assert code == 0 and summary["added"] == 20000
    assert elapsed < 60, f"20,000 rows took {elapsed:.1f} s"
    code, summary = run_json("subscribers", "import", str(path), config=config)
    assert summary["added"] == 0 and summary["updated"] == 20000


def test_show_and_remove_name_the_address_and_fail_clearly_when_unknown(config: Path) -> None:
    proc = run_cli("subscribers", "show", "nobody@example.org", config=config)
    assert proc.returncode != 0
    assert proc.stderr.strip() == "newsletter: error: nobody@example.org is not on the list"
    proc = run_cli("subscribers", "add", "not an address", config=config)
    assert proc.returncode != 0 and "is not a valid email address" in proc.stderr
    code, added = run_json("subscribers", "add", "Eve@Example.org", "--language", "es", "--editions", "weekly-es",
                           config=config)
    assert code == 0 and added["created"] and added["email"] == "eve@example.org"
    assert added["consents"][0]["action"] == "add"
    shown = run_cli("subscribers", "show", "eve@EXAMPLE.org", config=config, check=True).stdout
    assert "status: active" in shown and "editions: weekly-es" in shown


def test_a_large_file_streams_in_batches_and_names_a_repeat_from_an_earlier_batch(
        config: Path, store_url: str, tmp_path: Path) -> None:
    """12,000 rows (three batches): a repeat of line 2 near the end is still named, every other
    error keeps its line, and the output lists them in file order."""
    lines = [f"reader{i}@example.org,en,Mexico" for i in range(12000)]
    lines[7000] = "not an address,en,Mexico"
    lines[11000] = "READER0@Example.org,en,Mexico"
    lines[3000] = "reader3000@example.org,xx,Mexico"
    path = tmp_path / "large.csv"
    path.write_text("email,language,countries\n" + "\n".join(lines) + "\n", encoding="utf-8")
    code, summary = run_json("subscribers", "import", str(path), config=config)
    assert code == 1
    assert [(e["line"], e["reason"].split(":")[0]) for e in summary["invalid"]] == [
        (3002, "language 'xx'"), (7002, "'not an address' is not a valid email address"),
        (11002, "reader0@example.org is already on line 2")]
    assert summary["added"] == 11997
    proc = run_cli("subscribers", "import", str(path), config=config)
    assert [line.split(f"{path.name}:")[1].split(":")[0] for line in proc.stderr.strip().splitlines()] == \
        ["3002", "7002", "11002"]
    assert "0 added, 11997 updated" in proc.stdout


def test_rows_are_written_while_the_file_is_still_being_read(store_url: str, tmp_path: Path) -> None:
    """The import holds a few batches, not the file: it reads one batch ahead (checked while the
    store writes the one before), so when the reader reaches the third batch's rows the first
    batch is already in the store (same transaction). Counted through the driver's own cursor:
    on PostgreSQL the store's writes are then in flight in pipeline mode, and a query sent after
    them sees them."""
    engine = open_store(store_url)
    config = write_config(tmp_path, {**base_config(store_url), "editions": EDITIONS})
    vocabulary = Vocabulary(load(config))
    written_when_read: list[int] = []

    def lines(conn: sa.Connection) -> Iterator[str]:
        yield "email,name\n"
        for i in range(3 * csvfile._BATCH):
            if i == 2 * csvfile._BATCH + 10:
                cursor = conn.connection.driver_connection.cursor()
                cursor.execute(f"SELECT count(*) FROM {schema.subscribers.name}")
                written_when_read.append(cursor.fetchone()[0])
                cursor.close()
            yield f"reader{i}@example.org,Reader {i}\n"

    try:
        with engine.begin() as conn:
            summary = csvfile.import_rows(conn, csvfile.read_rows(lines(conn), vocabulary), "gen.csv")
    finally:
        engine.dispose()
    assert summary.added == 3 * csvfile._BATCH
    assert written_when_read == [csvfile._BATCH]


def test_a_repeat_in_the_next_batch_is_named_although_that_batch_was_checked_before_the_first_was_written(
        config: Path, store_url: str, tmp_path: Path) -> None:
    """The import looks up a batch before the one before it is written (the store writes while
    the next batch is checked), so a repeat of an address from the batch just before is found in
    memory: a new row, an update, a kept (suppressed) row and a leaving row, each repeated at the
    start of the next batch, are reported by line and written once."""
    existing = tmp_path / "existing.csv"
    existing.write_text("email,status\nold@example.org,active\ngone@example.org,unsubscribed\n", encoding="utf-8")
    assert run_json("subscribers", "import", str(existing), config=config)[1]["added"] == 2
    size = csvfile._BATCH
    emails = [f"reader{i}@example.org" for i in range(3 * size)]
    statuses = [""] * (3 * size)
    emails[0:4] = ["first@example.org", "old@example.org", "gone@example.org", "bye@example.org"]
    statuses[3] = "unsubscribed"
    emails[size:size + 5] = ["first@example.org", "old@example.org", "gone@example.org", "bye@example.org",
                             "reader4@example.org"]
    emails[2 * size:2 * size + 2] = [f"reader{size + 10}@example.org", "first@example.org"]
    path = tmp_path / "three-batches.csv"
    path.write_text("email,status\n" + "".join(f"{e},{s}\n" for e, s in zip(emails, statuses)), encoding="utf-8")
    code, summary = run_json("subscribers", "import", str(path), config=config)
    assert code == 1
    line = size + 2  # the first row of the second batch (the header is line 1)
    assert [(e["line"], e["reason"]) for e in summary["invalid"]] == [
        (line, "first@example.org is already on line 2"), (line + 1, "old@example.org is already on line 3"),
        (line + 2, "gone@example.org is already on line 4"), (line + 3, "bye@example.org is already on line 5"),
        (line + 4, "reader4@example.org is already on line 6"),
        (2 * size + 2, f"reader{size + 10}@example.org is already on line {size + 12}"),
        (2 * size + 3, "first@example.org is already on line 2")]
    assert (summary["added"], summary["updated"], summary["kept_suppressed"]) == (3 * size - 9, 1, 1)
    subscribers = rows(store_url, schema.subscribers)
    assert len(subscribers) == 2 + 3 * size - 9
    by_email = {r.email: r for r in subscribers}
    assert by_email["gone@example.org"].status == "unsubscribed" and by_email["bye@example.org"].status == "unsubscribed"
    consents = rows(store_url, schema.consents)
    assert len(consents) == len(subscribers) and len({c.subscriber_id for c in consents}) == len(subscribers)
    assert {s.email for s in rows(store_url, schema.suppressions)} == {"gone@example.org", "bye@example.org"}


def test_a_file_that_turns_out_not_to_be_utf8_after_many_rows_imports_nothing(
        config: Path, store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    good = "".join(f"reader{i}@example.org,Reader {i}\n" for i in range(12000))
    path.write_bytes(("email,name\n" + good).encode("utf-8") + b"late@example.org,Caf\xe9\n")
    proc = run_cli("subscribers", "import", str(path), config=config)
    assert proc.returncode != 0
    assert "is not UTF-8 text" in proc.stderr and "nothing imported" in proc.stderr
    assert rows(store_url, schema.subscribers) == [] and rows(store_url, schema.consents) == []


def test_an_update_replaces_only_the_columns_the_file_has_and_keeps_the_status_rules(
        config: Path, store_url: str, tmp_path: Path) -> None:
    """Rows are written set-based from a staged batch: what each kind of row does to the list."""
    first = tmp_path / "first.csv"
    first.write_text("email,name,language,editions,countries,status\n"
                     "ann@example.org,Ann,en,daily-en,Colombia,active\n"
                     "bea@example.org,Bea,es,weekly-es,,pending\n"
                     "cy@example.org,Cy,en,,,active\n", encoding="utf-8")
    assert run_json("subscribers", "import", str(first), config=config)[1]["added"] == 3
    second = tmp_path / "second.csv"
    second.write_text("email,status,consent_ip\n"
                      "ann@example.org,pending,192.0.2.1\n"  # confirmed: not set back to pending
                      "bea@example.org,active,192.0.2.2\n"
                      "cy@example.org,unsubscribed,192.0.2.3\n"
                      "new@example.org,,192.0.2.4\n"
                      "next@example.org,pending,192.0.2.5\n", encoding="utf-8")
    code, summary = run_json("subscribers", "import", str(second), config=config)
    assert code == 0 and (summary["added"], summary["updated"], summary["kept_suppressed"]) == (2, 3, 0)
    subscribers = {r.email: r for r in rows(store_url, schema.subscribers)}
    ann, bea, cy = subscribers["ann@example.org"], subscribers["bea@example.org"], subscribers["cy@example.org"]
    # Columns the second file lacks keep what the first one stored.
    assert (ann.name, ann.language, ann.editions, ann.countries, ann.status) == \
        ("Ann", "en", ["daily-en"], ["colombia"], "active")
    assert (bea.name, bea.language, bea.editions, bea.status) == ("Bea", "es", ["weekly-es"], "active")
    assert cy.status == "unsubscribed" and cy.unsubscribed_at is not None and ann.unsubscribed_at is None
    assert ann.updated_at > ann.created_at
    # New rows take ids in file order, each with one `import` consent record carrying its own fields;
    # updated subscribers get none.
    assert subscribers["new@example.org"].id < subscribers["next@example.org"].id
    assert subscribers["new@example.org"].language == "en" and subscribers["next@example.org"].status == "pending"
    consents = rows(store_url, schema.consents)
    ids = {r.id: r.email for r in subscribers.values()}
    assert sorted((ids[c.subscriber_id], c.action, c.ip, c.detail) for c in consents
                  if c.ip is not None) == [("new@example.org", "import", "192.0.2.4", {"file": "second.csv"}),
                                          ("next@example.org", "import", "192.0.2.5", {"file": "second.csv"})]
    assert len(consents) == 5
    assert {(s.email, s.reason) for s in rows(store_url, schema.suppressions)} == {("cy@example.org", "unsubscribed")}
    # Left is left: a third file cannot bring cy back, and names the row as kept.
    third = tmp_path / "third.csv"
    third.write_text("email,name\ncy@example.org,Cy Again\n", encoding="utf-8")
    assert run_json("subscribers", "import", str(third), config=config)[1]["kept_suppressed"] == 1
    assert {r.email: r for r in rows(store_url, schema.subscribers)}["cy@example.org"].name == "Cy"
