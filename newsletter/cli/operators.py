"""`newsletter operators add|list|remove|token`: the accounts of the console and the operator API."""

from __future__ import annotations

import argparse
import getpass
import sys

from rich.table import Table

from newsletter import audit, operators
from newsletter.audit import cli_actor
from newsletter.cli.context import Context
from newsletter.operators import ROLES, OperatorError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("operators", help="add, list or remove operator accounts; give one an API token")
    commands = parser.add_subparsers(dest="operators_command", metavar="COMMAND", required=True)
    add = commands.add_parser("add", help="add an operator (the password is read from standard input, "
                                          "or asked for on a terminal)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", choices=ROLES, required=True,
                     help="editor: preview and send tests; admin: also send, pause, resume, manage subscribers")
    add.set_defaults(handler=run_add)
    listing = commands.add_parser("list", help="every operator with their role")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.set_defaults(handler=run_list)
    remove = commands.add_parser("remove", help="remove an operator; their sessions and token stop working at once")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(handler=run_remove)
    token = commands.add_parser("token", help="make a new operator API token for NAME (replaces the old one); "
                                              "printed once")
    token.add_argument("name", metavar="NAME")
    token.set_defaults(handler=run_token)


def _password() -> str:
    """From a terminal: asked twice, not echoed. Otherwise the first line of standard input."""
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise OperatorError("the two passwords differ; nothing was changed")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def run_add(ctx: Context, args: argparse.Namespace) -> int:
    operators.check_name(args.name)
    password = _password()
    with ctx.engine.begin() as conn:
        operator = operators.add(conn, args.name, args.role, password)
        audit.record(conn, cli_actor(), "operator_add", f"operator {operator.name}", f"role {operator.role}")
    ctx.out.print(f"operator {operator.name} added ({operator.role})", markup=False, highlight=False)
    return 0


def run_list(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.engine.connect() as conn:
        found = operators.listing(conn)
    if args.json:
        ctx.print_json([{"name": o.name, "role": o.role, "created_at": o.created_at.isoformat(), "token": o.has_token}
                        for o in found])
        return 0
    table = Table(title="Operators")
    for column in ("name", "role", "API token", "created"):
        table.add_column(column)
    for o in found:
        table.add_row(o.name, o.role, "yes" if o.has_token else "no", o.created_at.isoformat(timespec="minutes"))
    ctx.out.print(table)
    return 0


def run_remove(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.engine.begin() as conn:
        operators.remove(conn, args.name)
        audit.record(conn, cli_actor(), "operator_remove", f"operator {args.name}")
    ctx.out.print(f"operator {args.name} removed", markup=False, highlight=False)
    return 0


def run_token(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.engine.begin() as conn:
        token = operators.new_token(conn, args.name)
        audit.record(conn, cli_actor(), "operator_token", f"operator {args.name}", "new API token")
    # Only the token on stdout, so `TOKEN=$(newsletter operators token ana)` works.
    sys.stdout.write(token + "\n")
    return 0
