"""`newsletter report MAILING_ID | EDITION --since DATE`: what readers used, without tracking them."""

from __future__ import annotations

import argparse
from datetime import date, datetime, time, timezone
from pathlib import Path

from rich.table import Table

from newsletter.cli.context import Context
from newsletter.errors import NewsletterError
from newsletter.tracking import plot, report


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="clicks per mailing, brief and link kind, or an edition's trend")
    parser.add_argument("target", metavar="MAILING_ID|EDITION",
                        help="a mailing's id (see `mailings list`), or an edition's name for its trend")
    parser.add_argument("--since", type=_day, metavar="DATE",
                        help="with EDITION: mailings created on or after this day (YYYY-MM-DD, UTC); default: all")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw the trend and the per-brief bars")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.set_defaults(handler=run)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, not {text!r}") from None


def _percent(rate: float) -> str:
    return f"{100 * rate:.1f}%"


def run(ctx: Context, args: argparse.Namespace) -> int:
    if args.target.isdigit():
        if args.since:
            raise NewsletterError("report: --since goes with an edition's name, not a mailing id")
        return _mailing(ctx, args, int(args.target))
    edition = ctx.config.edition(args.target)
    since = datetime.combine(args.since or date(1970, 1, 1), time(), timezone.utc)
    with ctx.engine.connect() as conn:
        trend = report.edition_trend(conn, edition.name, since)
    if args.plot:
        plot.draw(args.plot, f"{edition.name}: mailings since {since.date().isoformat()}", trend["mailings"],
                  trend["latest_briefs"])
    if args.json:
        ctx.print_json(trend)
        return 0
    table = Table(title=f"{edition.name} since {since.date().isoformat()}")
    for column in ("mailing", "created", "delivered", "clicks", "click rate", "donate", "donate rate", "opens",
                   "filtered"):
        table.add_column(column)
    for m in trend["mailings"]:
        table.add_row(str(m["mailing_id"]), m["created_at"][:16], str(m["delivered"]), str(m["clicks"]),
                      _percent(m["click_rate"]), str(m["donate_clicks"]), _percent(m["donate_rate"]),
                      str(m["opens"]), str(sum(m["filtered"].values())))
    ctx.out.print(table)
    if not trend["mailings"]:
        ctx.out.print("no mailings in that time", markup=False, highlight=False)
    return 0


def _mailing(ctx: Context, args: argparse.Namespace, mailing_id: int) -> int:
    with ctx.engine.connect() as conn:
        figures = report.mailing_report(conn, mailing_id)
    if args.plot:
        trend = report.with_previous(figures)
        plot.draw(args.plot, f"mailing {mailing_id} ({figures['edition']}) and the {len(trend) - 1} before it",
                  trend, figures["briefs"])
    if args.json:
        ctx.print_json(figures)
        return 0
    out = ctx.out
    out.print(f"mailing {mailing_id} ({figures['edition']}), {figures['created_at'][:16]}: {figures['subject']}",
              markup=False, highlight=False)
    filtered = ", ".join(f"{k} {v}" for k, v in figures["filtered"].items())
    out.print(f"delivered {figures['delivered']}, skipped {figures['skipped']}; clicks {figures['clicks']} "
              f"({_percent(figures['click_rate'])}), donate {figures['donate_clicks']} "
              f"({_percent(figures['donate_rate'])}), opens {figures['opens']}; not counted: {filtered}",
              markup=False, highlight=False)
    kinds = figures["clicks_by_kind"]
    out.print("clicks by link: " + ", ".join(f"{k} {v}" for k, v in kinds.items()), markup=False, highlight=False)
    table = Table(title="Briefs")
    for column in ("brief", "countries", "delivered", "clicks", "click rate"):
        table.add_column(column)
    for b in figures["briefs"]:
        table.add_row(b["title"], ", ".join(b["countries"]), str(b["delivered"]), str(b["clicks"]),
                      _percent(b["click_rate"]))
    out.print(table)
    previous = figures["previous"]
    if previous["mailings"]:
        avg, diff = previous["average"], previous["difference"]
        out.print(f"against the edition's previous {previous['mailings']} mailings (average): "
                  f"delivered {avg['delivered']:.0f}, click rate {_percent(avg['click_rate'])} "
                  f"({100 * diff['click_rate']:+.1f} points), donate rate {_percent(avg['donate_rate'])} "
                  f"({100 * diff['donate_rate']:+.1f} points)", markup=False, highlight=False)
    else:
        out.print("no earlier mailing of this edition to compare with", markup=False, highlight=False)
    return 0
