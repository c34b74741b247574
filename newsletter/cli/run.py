"""`newsletter run [--once]`: the scheduler, or one pass of what is due (for cron)."""

from __future__ import annotations

import argparse
import sys

from newsletter import locks
from newsletter.cli.context import Context
from newsletter.cli.output import error_line
from newsletter.scheduler import Job, RunReport, run_forever


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="run the scheduler; --once collects, builds feeds, sends what is due, and exits")
    parser.add_argument("--once", action="store_true", help="do what is due now and exit (for cron)")
    parser.add_argument("--json", action="store_true", help="with --once: print what was done as JSON")
    parser.set_defaults(handler=run)


def _print(ctx: Context, report: RunReport) -> None:
    for source in report.sources:
        state = f"error: {source['error']}" if source["error"] else (
            f"{source['new']} new, {source['updated']} updated, {source['unchanged']} unchanged")
        ctx.out.print(f"source {source['name']}: {state}", markup=False, highlight=False)
    if report.collect_skipped:
        ctx.out.print(f"collect skipped: {report.collect_skipped}", markup=False, highlight=False)
    elif not report.feed_error:
        ctx.out.print(f"feeds: {report.feeds} file(s)", markup=False, highlight=False)
    if report.bounces is not None:
        b = report.bounces
        ctx.out.print(f"bounces: {b['read']} read, {b['kinds']['hard']} hard, {b['kinds']['soft']} soft, "
                      f"{b['kinds']['complaint']} complaints, {b['suppressed']} suppressed", markup=False, highlight=False)
    for e in report.editions:
        text = {"not-due": "not due", "no-news": f"slot {e.slot}: no new briefs, no mailing",
                "created": f"slot {e.slot}: mailing {e.mailing_id} created",
                "locked": f"slot {e.slot}: another process holds it ({e.detail})",
                "error": f"slot {e.slot}: {e.detail}"}[e.outcome]
        ctx.out.print(f"edition {e.edition}: {text}", markup=False, highlight=False)
    for s in report.sends:
        ctx.out.print(f"mailing {s.mailing_id} ({s.edition}): {s.status}, {s.sent} sent, {s.failed} failed"
                      + (f" ({s.detail})" if s.detail else ""), markup=False, highlight=False)


def _stopped(job: Job) -> int | None:
    """Say where each send a signal stopped left its mailing; the exit code when there was one."""
    for s in job.stopped:
        print(f"newsletter: {s.detail}; `newsletter send {s.edition} --resume` (or the next `newsletter run`) "
              f"carries on", file=sys.stderr)
    return job.stop.exit_code if job.stopped else None


def run(ctx: Context, args: argparse.Namespace) -> int:
    job = Job(ctx.config, ctx.engine, worker=locks.owner_id("run"))
    if not args.once:
        run_forever(job)
        return _stopped(job) or 0
    with job.stop.on_signals():
        report = job.once()
    if args.json:
        ctx.print_json(report.as_dict())
    else:
        _print(ctx, report)
    for failure in report.source_failures + report.send_failures:
        print(error_line(failure), file=sys.stderr)
    return _stopped(job) or report.exit_code
