"""`newsletter db upgrade`: apply the store's migrations."""

from __future__ import annotations

import argparse

from newsletter.cli.context import Context
from newsletter.store import upgrade
from newsletter.store.db import create_engine


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("db", help="manage the store")
    db_sub = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations to the newest schema")
    up.add_argument("--json", action="store_true", help="print the result as JSON")
    up.set_defaults(handler=run_upgrade)


def run_upgrade(ctx: Context, args: argparse.Namespace) -> int:
    engine = create_engine(ctx.config.store_url)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    if args.json:
        ctx.print_json({"from": before, "to": after, "changed": before != after})
    elif before == after:
        ctx.out.print(f"store already at revision {after}")
    else:
        ctx.out.print(f"store upgraded from {before or 'empty'} to {after}")
    return 0
