"""`newsletter collect`: fetch every source, with progress per source and a summary table."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from newsletter import feeds
from newsletter.cli.context import Context
from newsletter.cli.output import clean, styled
from newsletter.collect import SourceResult, collect_all


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("collect", help="fetch every source and store new and edited briefs")
    parser.add_argument("--json", action="store_true",
                        help="print per source new, updated, unchanged, withdrawn, requests, error, skipped items, "
                             "deferred_until")
    parser.set_defaults(handler=run)


class _Display:
    """Rich progress on stderr: one line per source with its request count and current URL."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def started(self, source: str) -> None:
        self.tasks[source] = self.progress.add_task(source, total=None, detail="starting")

    def requested(self, source: str, url: str, count: int) -> None:
        self.progress.update(self.tasks[source], detail=clean(f"{count} requests · {url[-70:]}"))

    def finished(self, result: SourceResult) -> None:
        detail = (f"deferred until {result.deferred_until[:16]}Z" if result.deferred_until else
                  f"failed after {result.requests} requests" if result.error else
                  f"{result.new} new, {result.updated} updated, {result.unchanged} unchanged")
        self.progress.update(self.tasks[result.name], total=1, completed=1, detail=detail)


def summary_table(results: list[SourceResult]) -> Table:
    table = Table(title="Collected")
    numbers = ("new", "updated", "unchanged", "withdrawn", "skipped", "requests")
    for column in ("source", *numbers, "error"):
        table.add_column(column, justify="right" if column in numbers else "left")
    for r in results:
        table.add_row(r.name, str(r.new), str(r.updated), str(r.unchanged), str(r.withdrawn), str(len(r.skipped)),
                      str(r.requests), styled(r.error, "red") if r.error else "")
    return table


def run(ctx: Context, args: argparse.Namespace) -> int:
    config, engine = ctx.config, ctx.engine
    console: Console = ctx.console
    columns = (SpinnerColumn(), TextColumn("{task.description}", markup=False),
               TextColumn("{task.fields[detail]}", markup=False),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        results = collect_all(config, engine, _Display(progress))
    # Feeds follow the store after every collect; only the files whose bytes changed are rewritten.
    feeds.build_all(config, engine)
    if args.json:
        ctx.print_json({"sources": [r.as_dict() for r in results]})
    else:
        console.print(summary_table(results))
        for r in results:
            for item in r.skipped:
                # The id and reason come from the source: terminal-safe, like every other line.
                console.print(clean(f"{r.name}: skipped item {item['id']}: {item['reason']}"), markup=False)
    failed = [r for r in results if r.error]
    for r in failed:
        # Plain lines, never wrapped, so scripts can grep them.
        print(clean(f"newsletter: source {r.name} failed: {r.error}").replace("\n", " "), file=sys.stderr)
    return 1 if failed else 0
