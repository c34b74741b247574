"""`newsletter subscribers`: import, export, add, remove and show addresses on the list."""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

import rich.progress

from newsletter.cli.context import Context
from newsletter.cli.output import clean, error_line, json_text
from newsletter.errors import SubscriberError
from newsletter.status import bounce_source
from newsletter.subscribers import csvfile, registry
from newsletter.subscribers.address import normalise
from newsletter.subscribers.profile import Vocabulary, split_list


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("subscribers", help="import, export, add, remove and show subscribers")
    commands = parser.add_subparsers(dest="subscribers_command", metavar="ACTION", required=True)

    p = commands.add_parser("import", help="add or update subscribers from a CSV file (see subscribers/example.csv)")
    p.add_argument("file", metavar="FILE", type=Path)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=import_)

    p = commands.add_parser("export", help="write every subscriber as CSV (the import format) or JSON")
    p.add_argument("file", metavar="FILE", nargs="?", type=Path, help="output file (default: standard output)")
    p.add_argument("--json", action="store_true", help="write a JSON array instead of CSV")
    p.set_defaults(handler=export)

    p = commands.add_parser("add", help="add an active subscriber (or update one), consent given to the operator")
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--name", default="")
    p.add_argument("--language", default="", help="default: the first edition's language")
    p.add_argument("--editions", default="", help="edition names separated by ',' (default: all in the language)")
    p.add_argument("--countries", default="", help="countries separated by ',' (default: all)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=add)

    p = commands.add_parser("remove", help="take an address off the list for good (it is suppressed)")
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=remove)

    p = commands.add_parser("show", help="show one subscriber with their consent records and events")
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(handler=show)


def import_(ctx: Context, args: argparse.Namespace) -> int:
    vocabulary = Vocabulary(ctx.config)
    # Rows are made and dropped a batch at a time; without this, each of the cyclic collector's full
    # passes also walked every object the start-up made (modules, SQLAlchemy, the config), which live
    # as long as the process anyway. (Raising the young generation's threshold too saved more CPU
    # but let a 1,000,000-row import peak at 282 MB.)
    gc.freeze()
    quiet = not ctx.console.is_terminal  # progress is for people watching, not for logs
    try:
        with rich.progress.open(args.file, encoding="utf-8-sig", newline="", description="importing rows",
                                console=ctx.console, transient=True, disable=quiet) as f:
            try:
                rows = csvfile.read_rows(f, vocabulary)
            except SubscriberError as exc:  # the header row is wrong: nothing was imported
                raise SubscriberError(f"{args.file}: {exc}; nothing imported") from exc
            # Rows are read, checked and written a batch at a time, in one transaction.
            with ctx.engine.begin() as conn:
                summary = csvfile.import_rows(conn, rows, args.file.name)
    except OSError as exc:
        raise SubscriberError(f"cannot read {args.file}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:  # the transaction was rolled back: nothing was imported
        raise SubscriberError(f"{args.file} is not UTF-8 text: {exc.reason} at byte {exc.start}; "
                              "nothing imported") from exc
    if args.json:
        ctx.print_json(summary.as_dict())
    else:
        ctx.out.print(f"{summary.added} added, {summary.updated} updated, "
                      f"{summary.kept_suppressed} left as they were (unsubscribed, bounced or suppressed), "
                      f"{len(summary.invalid)} invalid", highlight=False)
    for line, reason in summary.invalid:
        print(error_line(f"{args.file}:{line}: {reason}"), file=sys.stderr)
    return 1 if summary.invalid else 0


def export(ctx: Context, args: argparse.Namespace) -> int:
    try:
        out = open(args.file, "w", encoding="utf-8", newline="") if args.file else sys.stdout
    except OSError as exc:
        raise SubscriberError(f"cannot write {args.file}: {exc.strerror}") from exc
    try:
        with ctx.engine.connect() as conn:
            records = csvfile.export_records(conn)
            if args.json:
                out.write("[")
                for i, record in enumerate(records):
                    out.write(("," if i else "") + "\n  " + json_text(record, indent=None))
                out.write("\n]\n")
            elif out.isatty():
                # For eyes, not for import: nothing a subscriber typed may drive the terminal.
                csvfile.write_csv(({k: clean(v) if isinstance(v, str) else v for k, v in r.items()} for r in records),
                                  out)
            else:
                csvfile.write_csv(records, out)
    finally:
        if args.file:
            out.close()
    return 0


def add(ctx: Context, args: argparse.Namespace) -> int:
    vocabulary = Vocabulary(ctx.config)
    profile = vocabulary.profile(args.name, args.language, split_list(args.editions), split_list(args.countries))
    with ctx.engine.begin() as conn:
        subscriber_id, created = registry.add(conn, args.email, profile, registry.Consent(), source="cli")
        record = registry.data(conn, subscriber_id)
    if args.json:
        ctx.print_json({"created": created, **record})
    else:
        ctx.out.print(f"{'added' if created else 'updated'} {record['email']} ({record['language']}, active)",
                      highlight=False)
    return 0


def remove(ctx: Context, args: argparse.Namespace) -> int:
    with ctx.engine.begin() as conn:
        registry.remove(conn, args.email)
    email = normalise(args.email)
    if args.json:
        ctx.print_json({"email": email, "suppressed": True})
    else:
        ctx.out.print(f"removed {email}: it will not be mailed again", highlight=False)
    return 0


def show(ctx: Context, args: argparse.Namespace) -> int:
    email = normalise(args.email)
    with ctx.engine.connect() as conn:
        row = registry.find(conn, email)
        if row is None:
            raise SubscriberError(f"{email} is not on the list")
        record = registry.data(conn, row.id)
    if args.json:
        ctx.print_json(record)
        return 0
    for key in ("email", "name", "language", "editions", "countries", "status", "suppressed", "soft_bounces",
                "created_at", "confirmed_at", "unsubscribed_at"):
        value = record[key]
        text = ", ".join(value) if isinstance(value, list) else ("" if value is None else str(value))
        ctx.out.print(f"{key}: {text}", highlight=False)
    for c in record["consents"]:
        ctx.out.print(f"consent: {c['action']} at {c['at']} ip={c['ip'] or '-'} form={c['form_version'] or '-'}"
                      f"{' confirmed ' + c['confirmed_at'] if c['confirmed_at'] else ''}", highlight=False)
    for e in record["events"]:
        ctx.out.print(f"event: {e['kind']} at {e['at']} via {bounce_source(e['provider'])}", highlight=False)
    return 0
