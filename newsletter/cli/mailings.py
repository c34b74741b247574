"""`newsletter mailings list|pause|resume`: the operator's hands on mailings."""

from __future__ import annotations

import argparse

from rich.table import Table

from newsletter import operations
from newsletter.audit import cli_actor
from newsletter.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("mailings", help="list mailings, pause or resume one")
    commands = parser.add_subparsers(dest="mailings_command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", help="the newest mailings with their delivery counts")
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.set_defaults(handler=run_list)
    for name, handler, text in (("pause", run_pause, "stop a sending mailing at its next batch"),
                                ("resume", run_resume, "let a paused mailing send again")):
        command = commands.add_parser(name, help=text)
        command.add_argument("id", type=int, metavar="ID", help="the mailing's id (see `mailings list`)")
        command.add_argument("--json", action="store_true", help="print the mailing as JSON")
        command.set_defaults(handler=handler)


def run_list(ctx: Context, args: argparse.Namespace) -> int:
    rows = operations.recent(ctx.engine, args.limit)
    if args.json:
        ctx.print_json(rows)
        return 0
    table = Table(title="Mailings")
    for column in ("id", "edition", "slot", "status", "briefs", "pending", "sent", "failed", "suppressed", "skipped",
                   "created"):
        table.add_column(column)
    for m in rows:
        d = m["deliveries"]
        status = m["status"] + (f" ({m['paused_reason']})" if m["paused_reason"] else "")
        table.add_row(str(m["id"]), m["edition"], m["slot"], status, str(m["briefs"]), str(d["pending"] + d["sending"]),
                      str(d["sent"]), str(d["failed"]), str(d["suppressed"]), str(d["skipped"]), m["created_at"])
    ctx.out.print(table)
    return 0


def _show(ctx: Context, args: argparse.Namespace, mailing: dict, verb: str) -> int:
    if args.json:
        ctx.print_json(mailing)
    else:
        ctx.out.print(f"mailing {mailing['id']} ({mailing['edition']}) {verb}: status {mailing['status']}",
                      markup=False, highlight=False)
    return 0


def run_pause(ctx: Context, args: argparse.Namespace) -> int:
    return _show(ctx, args, operations.pause(ctx.engine, args.id, cli_actor()), "paused")


def run_resume(ctx: Context, args: argparse.Namespace) -> int:
    return _show(ctx, args, operations.resume(ctx.engine, args.id, cli_actor()),
                 "resumed; `newsletter run` or `send --resume` sends it")
