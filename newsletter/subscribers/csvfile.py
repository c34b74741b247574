"""The subscriber list as CSV: reading and writing are pure; `import_rows` applies the rows read,
streaming (a batch at a time, so a million-row file takes the memory of one batch).

Format (UTF-8, a header row; only `email` is required, columns may come in any order):
email, name, language, editions, countries, status, consent_at, consent_ip,
consent_user_agent, form_version, confirmed_at. Lists are separated by ';'. Times are
ISO 8601; a time without a zone is taken as UTC. Cells that a spreadsheet would run as a
formula are written with a leading `'` (and read back without it).
"""

from __future__ import annotations

import contextlib
import csv
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, NamedTuple, TextIO

import sqlalchemy as sa

from newsletter.errors import SubscriberError
from newsletter.store import schema, utcnow
from newsletter.subscribers.address import erased_key, subscribable
from newsletter.subscribers.profile import STATUSES, Vocabulary, split_list

S = schema.subscribers
C = schema.consents
COLUMNS = ("email", "name", "language", "editions", "countries", "status", "consent_at", "consent_ip",
           "consent_user_agent", "form_version", "confirmed_at")
PROFILE_COLUMNS = ("name", "language", "editions", "countries")
_REASON_FOR_STATUS = {"unsubscribed": "unsubscribed", "bounced": "hard_bounce", "complained": "complaint"}
_NEW_SUBSCRIBER = ("email", "name", "language", "editions", "countries", "status", "soft_bounces", "created_at",
                   "updated_at", "confirmed_at", "unsubscribed_at")
_NEW_CONSENT = ("subscriber_id", "action", "at", "ip", "user_agent", "form_version", "confirmed_at", "detail")
_BATCH = 5000  # rows read, looked up and written together: memory is a few batches, round trips few
_SQLITE_CACHE_KIB = 65536  # SQLite's page cache during an import (peak memory 154 MB at 1,000,000 rows)
_REMEMBERED = 10_000  # distinct list and time cells remembered (then forgotten and learnt again)
_MISSING = object()  # not remembered yet (None is a value)
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
        self.editions: dict[tuple[str, str], tuple[str, ...]] = {}
        self.countries: dict[str, tuple[str, ...]] = {}
        self.times: dict[str, dict[str, datetime | None]] = {"consent_at": {}, "confirmed_at": {}}

    def _remembered(self, memo: dict[Any, Any], key: Any, make: Any) -> Any:
        value = memo.get(key, _MISSING)
        if value is _MISSING:
            if len(memo) >= _REMEMBERED:
                memo.clear()
            value = memo[key] = make()
        return value

    def time(self, column: str, text: str) -> datetime | None:
        value = self.times[column].get(text, _MISSING)
        if value is _MISSING:
            value = self._remembered(self.times[column], text, lambda: _time(column, text))
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
                editions = self._remembered(self.editions, (text, language), lambda: vocabulary.edition_names(
                    split_list(text), language))
            values["editions"] = editions
        if "countries" in columns:
            text = cells.get("countries", "")
            countries = self.countries.get(text)
            if countries is None:
                countries = self._remembered(self.countries, text, lambda: vocabulary.country_slugs(
                    split_list(text)))
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
        joined = "".join(cells_list)
        if not joined.strip():
            continue
        if len(cells_list) != len(columns):
            yield Invalid(line, f"{len(cells_list)} cells where the header has {len(columns)}")
            continue
        if _QUOTE in joined:  # only then may a cell need restoring
            cells_list = [restore(c) if c[:1] == _QUOTE else c for c in cells_list]
        try:
            yield cells.row(line, dict(zip(columns, cells_list)))
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


# The file's addresses met so far and their first line, to name a repeated address's first line.
# Kept in the store for the length of the import (a temporary table, written batch by batch), not
# in memory: a million addresses would take over 100 MB as a Python dict.
_SEEN = sa.Table("import_seen", sa.MetaData(), sa.Column("email", sa.String(320), primary_key=True),
                 sa.Column("line", sa.Integer, nullable=False), prefixes=["TEMPORARY"])


def _lookup(conn: sa.Connection, columns: str, table: str, emails: list[str]) -> list[tuple[Any, ...]]:
    """`SELECT columns FROM table t` for the rows whose `t.email` is among `emails`, one statement
    for the lot: the store joins a JSON array of them (one text parameter; psycopg took 2 µs an
    element to send a list as an array) to the table's email index. Through the driver's cursor:
    SQLAlchemy's result rows cost more than the query (2.5 against 1.4 µs a row on SQLite)."""
    cursor = conn.connection.driver_connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            cursor.execute(f"SELECT {columns} FROM json_array_elements_text(%s::json) AS j(value) "
                           f"JOIN {table} t ON t.email = j.value", (json.dumps(emails),))
        else:
            cursor.execute(f"SELECT {columns} FROM json_each(?) AS j JOIN {table} t ON t.email = j.value",
                           (json.dumps(emails),))
        return cursor.fetchall()
    finally:
        cursor.close()


# One batch's rows as the store takes them, loaded at once (COPY on PostgreSQL, the driver's
# executemany on SQLite) into a table without indexes, then written by a few set-based
# statements: each new subscriber costs its index entries and nothing more, and its consent
# record is written by the store from the same rows. Emptied after each batch.
_NEW, _UPDATE, _KEEP = "new", "update", "keep"  # what a staged row does (KEEP: a suppressed address)
_STAGED = sa.Table(
    "import_batch", sa.MetaData(),
    sa.Column("line", sa.Integer, nullable=False), sa.Column("email", sa.String(320), nullable=False),
    sa.Column("action", sa.String(8), nullable=False), sa.Column("id", sa.Integer),
    # Profile columns: NULL on an update when the file has no such column (the stored value stays).
    sa.Column("name", S.c.name.type), sa.Column("language", S.c.language.type),
    sa.Column("editions", S.c.editions.type), sa.Column("countries", S.c.countries.type),
    sa.Column("status", S.c.status.type), sa.Column("confirmed_at", S.c.confirmed_at.type),
    sa.Column("unsubscribed_at", S.c.unsubscribed_at.type), sa.Column("consent_at", C.c.at.type),
    sa.Column("ip", C.c.ip.type), sa.Column("user_agent", C.c.user_agent.type),
    sa.Column("form_version", C.c.form_version.type),
    prefixes=["TEMPORARY"],
)
_STAGED_NAMES = tuple(c.name for c in _STAGED.columns)
_NOTHING = (None,) * (len(_STAGED_NAMES) - 3)


def _writes(source: str, now: datetime) -> list[sa.Executable]:
    """The statements that write a staged batch, in order: the file's addresses met so far, new
    subscribers (in file order, so ids follow the lines), their consent records, then updates."""
    B = _STAGED
    at_now = sa.bindparam("now", now, type_=S.c.updated_at.type)
    new = sa.select(B.c.email, B.c.name, B.c.language, B.c.editions, B.c.countries, B.c.status,
                    sa.literal(0), at_now, at_now, B.c.confirmed_at, B.c.unsubscribed_at) \
        .where(B.c.action == _NEW).order_by(B.c.line)
    consents = sa.select(S.c.id, sa.literal("import"), B.c.consent_at, B.c.ip, B.c.user_agent, B.c.form_version,
                         B.c.confirmed_at, sa.bindparam("detail", {"file": source}, type_=C.c.detail.type)) \
        .select_from(B.join(S, S.c.email == B.c.email)).where(B.c.action == _NEW).order_by(B.c.line)
    given = {name: sa.func.coalesce(B.c[name], S.c[name]) for name in PROFILE_COLUMNS}
    return [
        sa.insert(_SEEN).from_select(["email", "line"], sa.select(B.c.email, B.c.line)),
        sa.insert(S).from_select(_NEW_SUBSCRIBER, new),
        sa.insert(C).from_select(_NEW_CONSENT, consents),
        sa.update(S).where(S.c.id == B.c.id, B.c.action == _UPDATE).values(
            **given, status=B.c.status, updated_at=at_now,
            unsubscribed_at=sa.func.coalesce(B.c.unsubscribed_at, S.c.unsubscribed_at)),
    ]


def import_rows(conn: sa.Connection, rows: Iterable[ImportRow | Invalid], source: str) -> ImportSummary:
    """Add or update the valid rows in batches as they stream in, inside the caller's transaction.

    An address that unsubscribed, bounced, complained or was erased keeps that state
    whatever the file says; a row saying unsubscribed/bounced/complained suppresses it.
    New subscribers get an `import` consent record with the file's consent fields. An address
    already on an earlier line is invalid. Memory stays at three batches (one being written,
    one checked, one read) whatever the file's length. `rows` must not use `conn`: on PostgreSQL
    it is read while the connection is in pipeline mode.
    """
    if conn.dialect.name == "postgresql":
        # Rows written in this transaction have no statistics yet, so the planner takes a growing
        # table for a small one and scans all of it for every batch's look-ups (quadratic in the
        # file's length); the look-ups are all by a unique key, for which an index scan is right.
        # JIT would then compile each statement for its (disabled) seq-scan cost: 150 ms a batch.
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        conn.exec_driver_sql("SET LOCAL jit = off")
    for table in (_SEEN, _STAGED):
        table.drop(conn, checkfirst=True)
        table.create(conn)
    if conn.dialect.name == "sqlite":
        # A million rows' email index outgrows SQLite's 2 MB page cache: the cache then spills
        # pages to the WAL and reads them back again and again (10-20% of the CPU per row).
        # The connection's own setting comes back at the end; durability is untouched.
        cache = conn.exec_driver_sql("PRAGMA main.cache_size").scalar_one()
        conn.exec_driver_sql(f"PRAGMA main.cache_size = -{_SQLITE_CACHE_KIB}")
        try:
            return _import(conn, rows, source)
        finally:
            with contextlib.suppress(sa.exc.SQLAlchemyError):  # after a failure, the failure is what matters
                conn.exec_driver_sql(f"PRAGMA main.cache_size = {int(cache)}")
    return _import(conn, rows, source)


def _import(conn: sa.Connection, rows: Iterable[ImportRow | Invalid], source: str) -> ImportSummary:
    batches = _Batches(conn, source)
    rows = iter(rows)
    first = batches.take(rows)
    batches.load(batches.check(first, batches.look_up(first)))
    following = batches.take(rows)
    while True:
        # The next batch is looked up before the staged one is written: the writes only touch
        # the staged batch's addresses, which the next batch's rows meet in memory (`check`).
        # So the store writes one batch while the client checks the next and reads the one after.
        found = batches.look_up(following)
        with batches.writing():
            checked = batches.check(following, found)
            last = not following.rows
            following = batches.take(rows)
        batches.load(checked)
        if last:
            break
    for table in (_SEEN, _STAGED):
        table.drop(conn)
    batches.summary.invalid.sort()
    return batches.summary


class _Batch(NamedTuple):
    rows: list[ImportRow]
    erased: dict[str, str]  # the rows' addresses by their erased key (what erasure leaves suppressed)


class _Found(NamedTuple):
    """What the store holds about a batch's addresses."""
    earlier: dict[str, int]  # address: the file's line it was first on
    existing: dict[str, tuple[int, str]]  # address: (subscriber id, status)
    suppressed: set[str]


class _Checked(NamedTuple):
    staged: list[tuple[Any, ...]]  # the rows for `_STAGED`, encoded
    suppressions: list[dict[str, Any]]


class _Batches:
    """Writes one import's batches: reads a batch (`take`), looks its addresses up, checks each
    row against the file's earlier lines, the list and the suppressions, stages the batch
    (`load`), then writes it with `_writes`."""

    def __init__(self, conn: sa.Connection, source: str) -> None:
        self.conn, self.source, self.now = conn, source, utcnow()
        self.summary = ImportSummary()
        empty = sa.text(f"TRUNCATE {_STAGED.name}") if conn.dialect.name == "postgresql" else sa.delete(_STAGED)
        self.writes = [_driver_sql(conn.dialect, statement) for statement in (*_writes(source, self.now), empty)]
        self.json = _Encoder(conn.dialect, S.c.editions.type)
        self.time = _Encoder(conn.dialect, S.c.confirmed_at.type)
        self.previous: dict[str, int] = {}  # the last checked batch's addresses and lines, not yet written

    def take(self, rows: Iterator[ImportRow | Invalid]) -> _Batch:
        """The next batch of valid rows read (empty at the end); invalid ones go to the summary."""
        batch: list[ImportRow] = []
        invalid = self.summary.invalid
        for item in rows:
            if isinstance(item, Invalid):
                invalid.append((item.line, item.reason))
                continue
            batch.append(item)
            if len(batch) == _BATCH:
                break
        return _Batch(batch, {erased_key(r.email): r.email for r in batch})

    def look_up(self, batch: _Batch) -> _Found:
        conn, erased = self.conn, batch.erased
        emails = [r.email for r in batch.rows]
        return _Found(
            dict(_lookup(conn, "t.email, t.line", _SEEN.name, emails)),
            {email: (sid, status) for sid, email, status in _lookup(conn, "t.id, t.email, t.status", S.name, emails)},
            {erased.get(email, email) for (email,) in _lookup(conn, "t.email", schema.suppressions.name,
                                                               emails + list(erased))})

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Write the staged batch (if any). PostgreSQL's server works on it while the block runs (the
        statements go out in pipeline mode and their results are awaited when the block ends),
        so the client checks and reads the next batches meanwhile: the server's inserts took
        about as long as the client's work, and one waited for the other."""
        driver = self.conn.connection.driver_connection
        pipeline = driver.pipeline() if self.conn.dialect.name == "postgresql" else contextlib.nullcontext()
        with contextlib.closing(driver.cursor()) as cursor, pipeline:
            for sql, params in self.writes:
                cursor.execute(sql, params)
            yield

    def check(self, batch: _Batch, found: _Found) -> _Checked:
        """The batch's rows as they are to be staged (new, update or keep), each checked against
        the file's earlier lines (in the store, or in the previous batch, not yet written), the
        list and the suppressions; the summary counts them."""
        summary, now, json_, time_ = self.summary, self.now, self.json, self.time
        earlier, existing, suppressed = found
        previous, first_line = self.previous, {}
        staged: list[tuple[Any, ...]] = []
        suppressions: list[dict[str, Any]] = []
        now_text = time_(now)
        for row in batch.rows:
            line = earlier.get(row.email) or previous.get(row.email) or first_line.get(row.email)
            if line is not None:
                summary.invalid.append((row.line, f"{row.email} is already on line {line}"))
                continue
            first_line[row.email] = row.line
            status = row.values["status"]
            leaving = status in _REASON_FOR_STATUS
            current = existing.get(row.email)
            gone = row.email in suppressed or (current is not None and current[1] in _REASON_FOR_STATUS)
            if gone and not leaving:
                summary.kept_suppressed += 1
                staged.append((row.line, row.email, _KEEP, *_NOTHING))
                continue
            if leaving and row.email not in suppressed:
                suppressions.append({"email": row.email, "reason": _REASON_FOR_STATUS[status], "created_at": now,
                                     "detail": f"imported from {self.source}"})
            values, consent = row.values, row.consent
            unsubscribed_at = now_text if status == "unsubscribed" else None
            if current is None:
                staged.append((row.line, row.email, _NEW, None, values.get("name", ""), row.language,
                               json_(values.get("editions", ())), json_(values.get("countries", ())), status,
                               time_(row.confirmed_at), unsubscribed_at, time_(consent["at"] or now), consent["ip"],
                               consent["user_agent"], consent["form_version"]))
                summary.added += 1
                continue
            if gone or (current[1] == "active" and status == "pending"):
                status = current[1]  # never re-activate, never downgrade a confirmed subscriber
                unsubscribed_at = None
            staged.append((row.line, row.email, _UPDATE, current[0], values.get("name"), values.get("language"),
                           json_(values.get("editions")), json_(values.get("countries")), status, None,
                           unsubscribed_at, None, None, None, None))
            summary.updated += 1
        self.previous = first_line
        return _Checked(staged, suppressions)

    def load(self, checked: _Checked) -> None:
        """Stage a checked batch for `writing` (after the previous batch is written)."""
        if checked.staged:
            _insert(self.conn, _STAGED, _STAGED_NAMES, checked.staged)
        if checked.suppressions:
            self.conn.execute(sa.insert(schema.suppressions), checked.suppressions)


class _Encoder:
    """A column type's own bind processor (the value SQLAlchemy would send), applied once per
    distinct value: a file repeats a few lists and times. JSON goes to PostgreSQL's COPY as its
    text (the processor's wrapper would be serialised again each row)."""

    def __init__(self, dialect: sa.Dialect, type_: sa.types.TypeEngine[Any]) -> None:
        self.process = json.dumps if dialect.name == "postgresql" and isinstance(type_, sa.JSON) \
            else type_.dialect_impl(dialect).bind_processor(dialect) or (lambda value: value)
        self.memo: dict[Any, Any] = {None: None}

    def __call__(self, value: Any) -> Any:
        encoded = self.memo.get(value, _MISSING)
        if encoded is _MISSING:
            if len(self.memo) >= _REMEMBERED:
                self.memo = {None: None}
            encoded = self.memo[value] = self.process(value)
        return encoded


def _driver_sql(dialect: sa.Dialect, statement: sa.Executable) -> tuple[str, Any]:
    """A statement as the driver takes it, its parameters encoded as SQLAlchemy would encode them:
    the batch's writes go through the driver's own cursor (in pipeline mode on PostgreSQL)."""
    compiled = statement.compile(dialect=dialect)
    params = {}
    for name, value in compiled.construct_params().items():
        process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        params[name] = process(value) if process else value
    return str(compiled), tuple(params[name] for name in compiled.positiontup or ()) if compiled.positional else params


def _insert(conn: sa.Connection, table: sa.Table, names: tuple[str, ...], encoded: list[tuple[Any, ...]]) -> None:
    """Write many rows, their values already encoded (see _Encoder), through the driver's own bulk
    path, COPY on PostgreSQL and executemany on SQLite: SQLAlchemy's per-row executemany machinery
    took over half of a large import's time."""
    if conn.dialect.name == "postgresql":
        with conn.connection.driver_connection.cursor() as cursor:  # the same connection and transaction
            with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
                for values in encoded:
                    copy.write_row(values)
        return
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                         encoded)


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
