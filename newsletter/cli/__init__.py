"""The `newsletter` command: a thin layer over the library, one module per command group.

Each command module exposes `register(subparsers)`, which adds its parser and sets
`handler(ctx, args) -> int` as the parser's default. Errors from the library become one
clear line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from newsletter import __version__
from newsletter.cli.context import Context
from newsletter.cli.output import error_line
from newsletter.errors import NewsletterError
from newsletter.logs import setup_logging

COMMAND_MODULES = [
    "newsletter.cli.status",
    "newsletter.cli.collect",
    "newsletter.cli.db",
    "newsletter.cli.serve",
    "newsletter.cli.feed",
    "newsletter.cli.subscribers",
    "newsletter.cli.send",
    "newsletter.cli.run",
    "newsletter.cli.mailings",
    "newsletter.cli.preview",
    "newsletter.cli.report",
    "newsletter.cli.operators",
    "newsletter.cli.bounces",
]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI's parser; with `command` (a module of COMMAND_MODULES), only that command's,
    so running one command does not import every other one (the web server, the collector...)."""
    parser = argparse.ArgumentParser(
        prog="newsletter",
        description="Collect news briefs, publish Atom feeds and send email digests.",
    )
    parser.add_argument("--config", metavar="PATH", help="config file (default: $NEWSLETTER_CONFIG or ./config.toml)")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line on stderr")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.add_argument("--version", action="version", version=f"newsletter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = f"{__name__}.{command}"
    for name in [wanted] if wanted in COMMAND_MODULES else COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _command(argv: list[str] | None) -> str | None:
    """The command named on the command line, or None (help, a version, a mistake)."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--config")
    first.add_argument("command", nargs="?")
    first.add_argument("rest", nargs=argparse.REMAINDER)
    known, _ = first.parse_known_args(argv)
    return known.command


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    setup_logging(json_lines=args.log_json, verbose=args.verbose)
    ctx = Context.from_args(args)
    try:
        return args.handler(ctx, args)
    except NewsletterError as exc:
        print(error_line(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("newsletter: interrupted", file=sys.stderr)
        return 130
    finally:
        ctx.close()
        logging.shutdown()
