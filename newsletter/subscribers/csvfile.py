"""The subscriber list as CSV: reading and writing are pure; `import_rows` applies the rows read,
streaming (a batch at a time, so a million-row file takes the memory of one batch).

Format (UTF-8, a header row; only `email` is required, columns may come in any order):
email, name, language, editions, countries, status, consent_at, consent_ip,
consent_user_agent, form_version, confirmed_at. Lists are separated by ';'. Times are
ISO 8601; a time without a zone is taken as UTC. Cells that a spreadsheet would run as a
formula are written with a leading `'` (and read back without it).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, TextIO

import sqlalchemy as sa

from newsletter.errors import SubscriberError
from newsletter.store import schema, utcnow
from newsletter.subscribers.address import normalise
from newsletter.subscribers.profile import STATUSES, Vocabulary, split_list
from newsletter.subscribers.suppression import literal_in_list, suppressed_among

S = schema.subscribers
C = schema.consents
COLUMNS = ("email", "name", "language", "editions", "countries", "status", "consent_at", "consent_ip",
           "consent_user_agent", "form_version", "confirmed_at")
PROFILE_COLUMNS = ("name", "language", "editions", "countries")
_REASON_FOR_STATUS = {"unsubscribed": "unsubscribed", "bounced": "hard_bounce", "complained": "complaint"}
_CHUNK = 900  # below SQLite's bound-parameter limit
_BATCH = 5000  # rows read, looked up and written together: memory is one batch, round trips few
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_QUOTE = "'"


def neutralise(cell: str) -> str:
    """OWASP's defence: a leading `'` makes a formula-looking cell plain text. A cell that already
    starts with `'` before such a character (or another `'`) gets one too, so `restore` is exact."""
    if cell.startswith(FORMULA_STARTS) or (cell.startswith(_QUOTE) and cell[1:2] in (*FORMULA_STARTS, _QUOTE)):
        return _QUOTE + cell
    return cell


def restore(cell: str) -> str:
    """Undo `neutralise`: an export imports back to the same data."""
    if cell.startswith(_QUOTE) and cell[1:2] in (*FORMULA_STARTS, _QUOTE):
        return cell[1:]
    return cell


@dataclass(frozen=True)
class ImportRow:
    line: int
    email: str
    language: str
    values: dict[str, Any]  # subscriber columns the file gives (profile fields, status)
    consent: dict[str, Any]  # at, ip, user_agent, form_version
    confirmed_at: datetime | None


@dataclass(frozen=True)
class Invalid:
    line: int
    reason: str


def _time(column: str, text: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SubscriberError(f"{column} {text!r} is not an ISO 8601 time such as 2026-01-31T09:30:00Z") from exc
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _row(line: int, cells: dict[str, str], columns: tuple[str, ...], vocabulary: Vocabulary) -> ImportRow:
    email = normalise(cells.get("email", ""))
    language = vocabulary.language(cells.get("language", ""))
    values: dict[str, Any] = {"language": language} if "language" in columns else {}
    if "name" in columns:
        values["name"] = vocabulary.profile(cells.get("name", ""), language, (), ()).name
    if "editions" in columns:
        values["editions"] = list(vocabulary.edition_names(split_list(cells.get("editions", "")), language))
    if "countries" in columns:
        values["countries"] = list(vocabulary.country_slugs(split_list(cells.get("countries", ""))))
    status = (cells.get("status", "") or "active").strip().lower()
    if status not in STATUSES:
        raise SubscriberError(f"status {status!r}: expected one of {', '.join(STATUSES)}")
    values["status"] = status
    consent = {
        "at": _time("consent_at", cells.get("consent_at", "")),
        "ip": cells.get("consent_ip", "").strip()[:64] or None,
        "user_agent": cells.get("consent_user_agent", "").strip()[:512] or None,
        "form_version": cells.get("form_version", "").strip()[:64] or None,
    }
    return ImportRow(line, email, language, values, consent, _time("confirmed_at", cells.get("confirmed_at", "")))


def read_rows(lines: Iterable[str], vocabulary: Vocabulary) -> Iterator[ImportRow | Invalid]:
    """Check the header now (SubscriberError: nothing may be imported), then stream the rows
    as they are read: each one an ImportRow or the Invalid (line, reason) it is."""
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise SubscriberError("the file is empty; expected a header row starting with 'email'") from None
    except csv.Error as exc:
        raise SubscriberError(f"line 1: {exc}") from exc
    columns = tuple(h.strip().lower().lstrip("\ufeff") for h in header)
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise SubscriberError(f"line 1: unknown column {unknown[0]!r}; expected columns among {', '.join(COLUMNS)}")
    if "email" not in columns:
        raise SubscriberError("line 1: no 'email' column in the header row")
    return _rows(reader, columns, vocabulary)


def _rows(reader: Any, columns: tuple[str, ...], vocabulary: Vocabulary) -> Iterator[ImportRow | Invalid]:
    while True:
        line = reader.line_num + 1
        try:
            cells_list = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Invalid(line, str(exc))
            continue
        if not any(c.strip() for c in cells_list):
            continue
        if len(cells_list) != len(columns):
            yield Invalid(line, f"{len(cells_list)} cells where the header has {len(columns)}")
            continue
        try:
            yield _row(line, dict(zip(columns, (restore(c) for c in cells_list))), columns, vocabulary)
        except SubscriberError as exc:
            yield Invalid(line, str(exc))


@dataclass
class ImportSummary:
    added: int = 0
    updated: int = 0
    kept_suppressed: int = 0  # rows that asked for active/pending on an address that left or bounced
    invalid: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "kept_suppressed": self.kept_suppressed,
                "invalid": [{"line": line, "reason": reason} for line, reason in self.invalid]}


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def _existing(conn: sa.Connection, emails: list[str]) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    for chunk in _chunks(emails):
        query = sa.select(S.c.id, S.c.email, S.c.status).where(S.c.email.in_(literal_in_list(chunk)))
        for sid, email, status in conn.execute(query):
            found[email] = (sid, status)
    return found


# The file's addresses met so far and their first line, to name a repeated address's first line.
# Kept in the store for the length of the import (a temporary table, written batch by batch), not
# in memory: a million addresses would take over 100 MB as a Python dict.
_SEEN = sa.Table("import_seen", sa.MetaData(), sa.Column("email", sa.String(320), primary_key=True),
                 sa.Column("line", sa.Integer, nullable=False), prefixes=["TEMPORARY"])


def _first_lines(conn: sa.Connection, emails: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(emails):
        found.update(conn.execute(sa.select(_SEEN.c.email, _SEEN.c.line)
                                  .where(_SEEN.c.email.in_(literal_in_list(chunk)))).all())
    return found


def import_rows(conn: sa.Connection, rows: Iterable[ImportRow | Invalid], source: str) -> ImportSummary:
    """Add or update the valid rows in batches as they stream in, inside the caller's transaction.

    An address that unsubscribed, bounced, complained or was erased keeps that state
    whatever the file says; a row saying unsubscribed/bounced/complained suppresses it.
    New subscribers get an `import` consent record with the file's consent fields. An address
    already on an earlier line is invalid. Memory stays at one batch whatever the file's length.
    """
    summary = ImportSummary()
    now = utcnow()
    _SEEN.drop(conn, checkfirst=True)
    _SEEN.create(conn)
    batch: list[ImportRow] = []
    for item in rows:
        if isinstance(item, Invalid):
            summary.invalid.append((item.line, item.reason))
            continue
        batch.append(item)
        if len(batch) == _BATCH:
            _import_batch(conn, batch, source, now, summary)
            batch = []
    if batch:
        _import_batch(conn, batch, source, now, summary)
    _SEEN.drop(conn)
    summary.invalid.sort()
    return summary


def _import_batch(conn: sa.Connection, batch: list[ImportRow], source: str, now: datetime,
                  summary: ImportSummary) -> None:
    first_line: dict[str, int] = {}
    earlier = _first_lines(conn, [r.email for r in batch])
    rows: list[ImportRow] = []
    for row in batch:
        line = earlier.get(row.email) or first_line.get(row.email)
        if line is not None:
            summary.invalid.append((row.line, f"{row.email} is already on line {line}"))
            continue
        first_line[row.email] = row.line
        rows.append(row)
    conn.execute(sa.insert(_SEEN), [{"email": e, "line": n} for e, n in first_line.items()])
    emails = [r.email for r in rows]
    existing = _existing(conn, emails)
    suppressed = suppressed_among(conn, emails)
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    suppressions: list[dict[str, Any]] = []
    new_rows: list[ImportRow] = []
    leaving_ids: list[int] = []
    for row in rows:
        status = row.values["status"]
        leaving = status in _REASON_FOR_STATUS
        current = existing.get(row.email)
        gone = row.email in suppressed or (current is not None and current[1] in _REASON_FOR_STATUS)
        if gone and not leaving:
            summary.kept_suppressed += 1
            continue
        if leaving and row.email not in suppressed:
            suppressions.append({"email": row.email, "reason": _REASON_FOR_STATUS[status], "created_at": now,
                                 "detail": f"imported from {source}"})
        if current is None:
            inserts.append({"email": row.email, "name": "", "language": row.language, "editions": [], "countries": [],
                            **row.values,
                            "soft_bounces": 0, "created_at": now, "updated_at": now,
                            "confirmed_at": row.confirmed_at,
                            "unsubscribed_at": now if status == "unsubscribed" else None})
            new_rows.append(row)
            summary.added += 1
            continue
        values = dict(row.values)
        if gone or (current[1] == "active" and status == "pending"):
            values["status"] = current[1]  # never re-activate, never downgrade a confirmed subscriber
        elif status == "unsubscribed":
            leaving_ids.append(current[0])
        updates.append({"sid": current[0], "updated_at": now, **values})
        summary.updated += 1
    if inserts:
        ids = dict(conn.execute(sa.insert(S).returning(S.c.email, S.c.id), inserts).all())
        conn.execute(sa.insert(C), [
            {"subscriber_id": ids[r.email], "action": "import", "at": r.consent["at"] or now,
             "ip": r.consent["ip"], "user_agent": r.consent["user_agent"], "form_version": r.consent["form_version"],
             "confirmed_at": r.confirmed_at, "detail": {"file": source}}
            for r in new_rows
        ])
    if updates:
        keys = [k for k in updates[0] if k != "sid"]
        statement = sa.update(S).where(S.c.id == sa.bindparam("sid")).values(
            {k: sa.bindparam("v_" + k) for k in keys})
        conn.execute(statement, [{"sid": u["sid"], **{"v_" + k: u[k] for k in keys}} for u in updates])
    for chunk in _chunks(leaving_ids):
        conn.execute(sa.update(S).where(S.c.id.in_(chunk)).values(unsubscribed_at=now))
    if suppressions:
        conn.execute(sa.insert(schema.suppressions), suppressions)


EXPORT_ACTIONS = ("subscribe", "import", "add")


def export_records(conn: sa.Connection) -> Iterator[dict[str, Any]]:
    """Every subscriber with the consent that brought them in, ordered by id, streamed."""
    latest = (sa.select(C.c.subscriber_id, sa.func.max(C.c.id).label("cid"))
              .where(C.c.action.in_(EXPORT_ACTIONS)).group_by(C.c.subscriber_id).subquery())
    query = (
        sa.select(S, C.c.at.label("consent_at"), C.c.ip.label("consent_ip"),
                  C.c.user_agent.label("consent_user_agent"), C.c.form_version)
        .select_from(S.outerjoin(latest, latest.c.subscriber_id == S.c.id).outerjoin(C, C.c.id == latest.c.cid))
        .order_by(S.c.id)
    )
    for row in conn.execution_options(stream_results=True, yield_per=2000).execute(query):
        yield {
            "email": row.email, "name": row.name, "language": row.language, "editions": list(row.editions),
            "countries": list(row.countries), "status": row.status,
            "consent_at": row.consent_at.isoformat() if row.consent_at else None,
            "consent_ip": row.consent_ip, "consent_user_agent": row.consent_user_agent,
            "form_version": row.form_version,
            "confirmed_at": row.confirmed_at.isoformat() if row.confirmed_at else None,
        }


def write_csv(records: Iterable[dict[str, Any]], out: TextIO) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for record in records:
        writer.writerow([neutralise(";".join(v) if isinstance(v, list) else ("" if v is None else str(v)))
                         for v in (record[c] for c in COLUMNS)])
        count += 1
    return count
