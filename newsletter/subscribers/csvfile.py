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
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, NamedTuple, TextIO

import sqlalchemy as sa

from newsletter.errors import SubscriberError
from newsletter.store import schema, utcnow
from newsletter.subscribers.address import subscribable
from newsletter.subscribers.profile import STATUSES, Vocabulary, split_list
from newsletter.subscribers.suppression import in_values, suppressed_among

S = schema.subscribers
C = schema.consents
COLUMNS = ("email", "name", "language", "editions", "countries", "status", "consent_at", "consent_ip",
           "consent_user_agent", "form_version", "confirmed_at")
PROFILE_COLUMNS = ("name", "language", "editions", "countries")
_REASON_FOR_STATUS = {"unsubscribed": "unsubscribed", "bounced": "hard_bounce", "complained": "complaint"}
_CHUNK = 900  # below SQLite's bound-parameter limit
_NEW_SUBSCRIBER = ("email", "name", "language", "editions", "countries", "status", "soft_bounces", "created_at",
                   "updated_at", "confirmed_at", "unsubscribed_at")
_NEW_CONSENT = ("subscriber_id", "action", "at", "ip", "user_agent", "form_version", "confirmed_at", "detail")
_BATCH = 5000
_REMEMBERED = 10_000  # distinct list and time cells remembered (then forgotten and learnt again)
_MISSING = object()  # rows read, looked up and written together: memory is one batch, round trips few
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


class ImportRow(NamedTuple):
    line: int
    email: str
    language: str
    values: dict[str, Any]  # subscriber columns the file gives (profile fields, status)
    consent: dict[str, Any]  # at, ip, user_agent, form_version
    confirmed_at: datetime | None


class Invalid(NamedTuple):
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


class _Cells:
    """Reads one file's cells into store values. A list's choices repeat from row to row (a few
    editions, a few country sets, one consent time for a whole batch), so each distinct list or
    time cell is checked once and the same value reused."""

    def __init__(self, columns: tuple[str, ...], vocabulary: Vocabulary) -> None:
        self.columns = columns
        self.vocabulary = vocabulary
        self.editions: dict[tuple[str, str], list[str]] = {}
        self.countries: dict[str, list[str]] = {}
        self.times: dict[tuple[str, str], datetime | None] = {}

    def _remembered(self, memo: dict[Any, Any], key: Any, make: Any) -> Any:
        value = memo.get(key, _MISSING)
        if value is _MISSING:
            if len(memo) >= _REMEMBERED:
                memo.clear()
            value = memo[key] = make()
        return value

    def time(self, column: str, text: str) -> datetime | None:
        value = self.times.get((column, text), _MISSING)
        if value is _MISSING:
            value = self._remembered(self.times, (column, text), lambda: _time(column, text))
        return value

    def row(self, line: int, cells: dict[str, str]) -> ImportRow:
        columns, vocabulary = self.columns, self.vocabulary
        email = subscribable(cells.get("email", ""))
        language = vocabulary.language(cells.get("language", ""))
        values: dict[str, Any] = {"language": language} if "language" in columns else {}
        if "name" in columns:
            values["name"] = vocabulary.name(cells.get("name", ""))
        # The memo is looked up inline (a method call and a closure per cell cost more than the look-up).
        if "editions" in columns:
            text = cells.get("editions", "")
            editions = self.editions.get((text, language))
            if editions is None:
                editions = self._remembered(self.editions, (text, language), lambda: list(
                    vocabulary.edition_names(split_list(text), language)))
            values["editions"] = editions
        if "countries" in columns:
            text = cells.get("countries", "")
            countries = self.countries.get(text)
            if countries is None:
                countries = self._remembered(self.countries, text, lambda: list(
                    vocabulary.country_slugs(split_list(text))))
            values["countries"] = countries
        status = (cells.get("status", "") or "active").strip().lower()
        if status not in STATUSES:
            raise SubscriberError(f"status {status!r}: expected one of {', '.join(STATUSES)}")
        values["status"] = status
        consent = {
            "at": self.time("consent_at", cells.get("consent_at", "")),
            "ip": cells.get("consent_ip", "").strip()[:64] or None,
            "user_agent": cells.get("consent_user_agent", "").strip()[:512] or None,
            "form_version": cells.get("form_version", "").strip()[:64] or None,
        }
        return ImportRow(line, email, language, values, consent, self.time("confirmed_at", cells.get("confirmed_at", "")))


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
    return _rows(reader, _Cells(columns, vocabulary))


def _rows(reader: Any, cells: _Cells) -> Iterator[ImportRow | Invalid]:
    columns = cells.columns
    while True:
        line = reader.line_num + 1
        try:
            cells_list = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Invalid(line, str(exc))
            continue
        if not "".join(cells_list).strip():
            continue
        if len(cells_list) != len(columns):
            yield Invalid(line, f"{len(cells_list)} cells where the header has {len(columns)}")
            continue
        try:
            yield cells.row(line, dict(zip(columns, [restore(c) if c[:1] == _QUOTE else c for c in cells_list])))
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
    for condition in in_values(conn, S.c.email, emails):
        # fetched at once: row by row, the result's per-row machinery cost more than the query
        found.update((email, (sid, status)) for sid, email, status
                     in conn.execute(sa.select(S.c.id, S.c.email, S.c.status).where(condition)).all())
    return found


# The file's addresses met so far and their first line, to name a repeated address's first line.
# Kept in the store for the length of the import (a temporary table, written batch by batch), not
# in memory: a million addresses would take over 100 MB as a Python dict.
_SEEN = sa.Table("import_seen", sa.MetaData(), sa.Column("email", sa.String(320), primary_key=True),
                 sa.Column("line", sa.Integer, nullable=False), prefixes=["TEMPORARY"])


def _first_lines(conn: sa.Connection, emails: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for condition in in_values(conn, _SEEN.c.email, emails):
        found.update(conn.execute(sa.select(_SEEN.c.email, _SEEN.c.line).where(condition)).all())
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
    if conn.dialect.name == "postgresql":
        # Rows written in this transaction have no statistics yet, so the planner takes a growing
        # table for a small one and scans all of it for every batch's look-ups (quadratic in the
        # file's length); the look-ups are all by a unique key, for which an index scan is right.
        # JIT would then compile each statement for its (disabled) seq-scan cost: 150 ms a batch.
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        conn.exec_driver_sql("SET LOCAL jit = off")
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
    _insert(conn, _SEEN, ("email", "line"), list(first_line.items()))
    emails = [r.email for r in rows]
    existing = _existing(conn, emails)
    suppressed = suppressed_among(conn, emails)
    inserts: list[tuple[Any, ...]] = []
    updates: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}  # by the columns the rows set
    suppressions: list[dict[str, Any]] = []
    new_rows: list[ImportRow] = []
    leaving_ids: list[int] = []
    detail = {"file": source}
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
            values = row.values
            inserts.append((row.email, values.get("name", ""), row.language, values.get("editions", []),
                            values.get("countries", []), status, 0, now, now, row.confirmed_at,
                            now if status == "unsubscribed" else None))
            new_rows.append(row)
            summary.added += 1
            continue
        values = dict(row.values)
        if gone or (current[1] == "active" and status == "pending"):
            values["status"] = current[1]  # never re-activate, never downgrade a confirmed subscriber
        elif status == "unsubscribed":
            leaving_ids.append(current[0])
        keys = ("updated_at", *values)
        updates.setdefault(keys, []).append((now, *values.values(), current[0]))
        summary.updated += 1
    if inserts:
        _insert(conn, S, _NEW_SUBSCRIBER, inserts)
        ids = _existing(conn, [r.email for r in new_rows])
        _insert(conn, C, _NEW_CONSENT, [
            (ids[r.email][0], "import", r.consent["at"] or now, r.consent["ip"], r.consent["user_agent"],
             r.consent["form_version"], r.confirmed_at, detail) for r in new_rows])
    for keys, group in updates.items():
        _update(conn, S, keys, group)
    for chunk in _chunks(leaving_ids):
        conn.execute(sa.update(S).where(S.c.id.in_(chunk)).values(unsubscribed_at=now))
    if suppressions:
        conn.execute(sa.insert(schema.suppressions), suppressions)


def _encoders(conn: sa.Connection, table: sa.Table, names: tuple[str, ...]) -> list[tuple[int, Any]]:
    """(position, the column type's own bind processor) for the columns that need one. JSON goes
    to PostgreSQL's COPY as its text (the processor's wrapper would be serialised again each row)."""
    dialect = conn.dialect
    found = [(i, json.dumps if dialect.name == "postgresql" and isinstance(table.c[name].type, sa.JSON)
              else table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for i, name in enumerate(names)]
    return [(i, process) for i, process in found if process is not None]


def _encoded(rows: list[tuple[Any, ...]], encoders: list[tuple[int, Any]]) -> list[tuple[Any, ...]]:
    """The rows with each value encoded, a column at a time. A value object met again (the
    batch's time, a list or time the file repeats, see _Cells) is encoded once; objects are known
    by identity, which holds as `rows` keeps them alive meanwhile."""
    if not rows or not encoders:
        return rows
    columns: list[Any] = list(zip(*rows))
    for i, process in encoders:
        # The per-value passes are map/zip (C loops); Python code runs once per distinct object.
        ids = list(map(id, columns[i]))
        memo = {key: None if value is None else process(value) for key, value in dict(zip(ids, columns[i])).items()}
        columns[i] = list(map(memo.__getitem__, ids))
    return list(zip(*columns))


def _insert(conn: sa.Connection, table: sa.Table, names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Write many rows through the driver's own bulk path, COPY on PostgreSQL and executemany on
    SQLite, each value encoded by its column's type as SQLAlchemy would: SQLAlchemy's per-row
    executemany machinery took over half of a large import's time."""
    encoded = _encoded(rows, _encoders(conn, table, names))
    if conn.dialect.name == "postgresql":
        with conn.connection.driver_connection.cursor() as cursor:  # the same connection and transaction
            with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
                for values in encoded:
                    copy.write_row(values)
        return
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                         encoded)


def _update(conn: sa.Connection, table: sa.Table, names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """UPDATE table SET names... WHERE id = the last value of each row: SQLite with the driver's
    executemany; PostgreSQL copies the rows into a scratch table and updates from it in one
    statement (row by row it was ten times slower)."""
    if conn.dialect.name != "postgresql":
        conn.exec_driver_sql(f"UPDATE {table.name} SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
                             _encoded(rows, _encoders(conn, table, names)))
        return
    scratch = f"import_{table.name}"
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {scratch} AS SELECT {', '.join(names)}, id FROM {table.name} "
                         "WITH NO DATA")
    _insert(conn, sa.Table(scratch, sa.MetaData(), *(sa.Column(n, table.c[n].type) for n in (*names, "id"))),
            (*names, "id"), rows)
    conn.exec_driver_sql(f"UPDATE {table.name} SET {', '.join(f'{n} = u.{n}' for n in names)} FROM {scratch} u "
                         f"WHERE {table.name}.id = u.id")
    conn.exec_driver_sql(f"DROP TABLE {scratch}")


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
