"""`newsletter feed`: write the Atom feeds into `[feed].output_dir` and say which changed."""

from __future__ import annotations

import argparse
from pathlib import Path

from newsletter import feeds
from newsletter.cli.context import Context


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("feed", help="write the Atom feeds into [feed].output_dir")
    parser.add_argument("--json", action="store_true", help="print which feed files were written as JSON")
    parser.set_defaults(handler=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    report = feeds.build(ctx.config, ctx.engine)
    root = report.output_dir

    def names(paths: list[Path]) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in paths)

    if args.json:
        ctx.print_json(
            {
                "output_dir": str(root),
                "written": names(report.written),
                "unchanged": names(report.unchanged),
                "hub": {"pinged": report.hub.pinged, "failed": report.hub.failed},
            }
        )
        return 0
    for name in names(report.written):
        ctx.out.print(f"written    {name}")
    for url, problem in sorted(report.hub.failed.items()):
        ctx.console.print(f"hub ping failed for {url}: {problem}")
    ctx.out.print(f"{len(report.written)} written, {len(report.unchanged)} unchanged in {root}")
    return 0
