"""`newsletter bounces fetch`: read the bounce mailbox and apply what it says."""

from __future__ import annotations

import argparse
import sys

from rich.table import Table

from newsletter.bounces.fetch import fetch
from newsletter.cli.context import Context
from newsletter.cli.output import clean


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bounces", help="bounces and complaints from the bounce mailbox ([bounces])")
    commands = parser.add_subparsers(dest="bounces_command", metavar="ACTION", required=True)
    fetch = commands.add_parser("fetch", help="read new messages, suppress hard bounces and complaints, count soft ones")
    fetch.add_argument("--json", action="store_true", help="print the counts as JSON")
    fetch.set_defaults(handler=run_fetch)


def run_fetch(ctx: Context, args: argparse.Namespace) -> int:
    summary = fetch(ctx.config, ctx.engine)
    if args.json:
        ctx.print_json(summary.as_dict())
    else:
        table = Table(title="Bounce mailbox")
        for column in ("read", "hard", "soft", "complaint", "auto-reply", "unknown", "suppressed", "not ours",
                       "already applied"):
            table.add_column(column, justify="right")
        k = summary.kinds
        table.add_row(*(str(v) for v in (summary.read, k["hard"], k["soft"], k["complaint"], k["auto_reply"],
                                         k["unknown"], summary.suppressed, summary.unmatched, summary.duplicates)))
        ctx.console.print(table)
        if summary.left_for_person:
            ctx.console.print(clean(f"{summary.left_for_person} message(s) left in the mailbox for a person: "
                                    "not a bounce, complaint or auto-reply"))
    for error in summary.errors:
        print(clean(f"newsletter: error: bounce mailbox: {error}").replace("\n", " "), file=sys.stderr)
    return 1 if summary.errors else 0
