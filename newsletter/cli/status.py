"""`newsletter status`: sources, editions, mailings and their counts."""

from __future__ import annotations

import argparse

from rich.table import Table

from newsletter import operations, status
from newsletter.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("status", help="show sources, editions, mailings and their counts")
    parser.add_argument("--limit", type=_positive, metavar="N",
                        help="show only the newest N mailings (default: every mailing)")
    parser.add_argument("--audit", action="store_true",
                        help="show the audit log of operator actions instead (newest first; --limit N, default 50)")
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.set_defaults(handler=run)


AUDIT_LIMIT = 50


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of mailings, 1 or more, not {text!r}")
    return value


def _minute(iso: str | None) -> str:
    """An ISO UTC time cut to the minute, to keep the table narrow: "2026-03-02 12:00Z"."""
    return f"{iso[:10]} {iso[11:16]}Z" if iso else ""


def run(ctx: Context, args: argparse.Namespace) -> int:
    if args.audit:
        return _audit(ctx, args)
    report = status.gather(ctx.config, ctx.engine, mailing_limit=args.limit)
    if args.json:
        ctx.print_json(report)
        return 0
    sources = Table(title="Sources")
    for column in ("source", "kind", "briefs", "withdrawn", "last success", "last run", "last error"):
        sources.add_column(column)
    for s in report["sources"]:
        error = s["last_error"] or ""
        if s["deferred_until"]:
            error = f"deferred until {_minute(s['deferred_until'])}" + (f": {error}" if error else "")
        sources.add_row(
            s["name"], s["kind"], str(s["briefs"]), str(s["withdrawn"]), s["last_success_at"] or "never",
            s["last_run_at"] or "never", error,
        )
    editions = Table(title="Editions")
    for column in ("edition", "language", "schedule", "last mailing", "last slot", "next due", "new briefs"):
        editions.add_column(column)
    for e in report["editions"]:
        last = (f"#{e['last_mailing_id']} {e['last_mailing_status']}, {_minute(e['last_mailing_at'])}"
                if e["last_mailing_id"] else "never")
        slot = f"{_minute(e['last_slot'])} ({e['last_slot_outcome']})" if e["last_slot"] else "none yet"
        editions.add_row(
            e["name"], e["language"], f"{e['schedule']} {e['timezone']}", last, slot, _minute(e["next_due_at"]),
            str(e["waiting_briefs"]),
        )
    mailings = Table(title="Mailings")
    for column in ("id", "edition", "status", "briefs", "pending", "sent", "failed", "suppressed", "skipped",
                   "late bounces", "created"):
        mailings.add_column(column)
    for m in report["mailings"]:
        d = m["deliveries"]
        status_text = m["status"] + (f" ({m['paused_reason']})" if m["paused_reason"] else "")
        mailings.add_row(
            str(m["id"]), m["edition"], status_text, str(m["briefs"]), str(d["pending"] + d["sending"]),
            str(d["sent"]), str(d["failed"]), str(d["suppressed"]), str(d["skipped"]), str(m["late_bounces"]),
            m["created_at"],
        )
    bounces = Table(title=f"Bounces and complaints since {_minute(report['bounces']['since'])}")
    for column in ("when", "kind", "address", "source"):
        bounces.add_column(column)
    for b in report["bounces"]["newest"]:
        bounces.add_row(_minute(b["at"]), b["kind"].replace("_", " "), b["email"] or "", b["source"])
    for table in (sources, editions, mailings, bounces):
        ctx.out.print(table)
    return 0


def _audit(ctx: Context, args: argparse.Namespace) -> int:
    entries = operations.audit_log(ctx.engine, args.limit or AUDIT_LIMIT)
    if args.json:
        ctx.print_json(entries)
        return 0
    table = Table(title="Audit log")
    for column in ("when", "who", "channel", "from", "action", "target", "detail"):
        table.add_column(column)
    for e in entries:
        table.add_row(_minute(e["at"]), e["operator"], e["channel"], e["origin"] or "", e["action"], e["target"] or "",
                      e["detail"] or "")
    ctx.out.print(table)
    return 0
