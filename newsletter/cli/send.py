"""`newsletter send EDITION`: send now, whatever the schedule; `--resume` only carries on."""

from __future__ import annotations

import argparse
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from newsletter import operations
from newsletter.audit import cli_actor
from newsletter.cli.context import Context
from newsletter.errors import MailingError, NewsletterError
from newsletter.send.dispatch import SendSummary
from newsletter.send.stop import Stop
from newsletter.states import MailingStatus


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("send", help="send an edition now: create its mailing if there is news, or carry on an unfinished one")
    parser.add_argument("edition", metavar="EDITION", help="the edition's name in the config")
    parser.add_argument("--resume", action="store_true", help="only carry on the edition's unfinished (or paused) mailing")
    parser.add_argument("--dry-run", action="store_true",
                        help="render and count the remaining copies (with --to: render that one copy); send and record nothing")
    parser.add_argument("--to", metavar="EMAIL",
                        help="send the mailing a reader would get next (the unfinished one, else a draft of the next, "
                             "else the newest) to this one address as a test, recording nothing")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run)


def _report(ctx: Context, args: argparse.Namespace, data: dict[str, Any], line: str) -> None:
    if args.json:
        ctx.print_json(data)
    else:
        ctx.out.print(line, markup=False, highlight=False)


def run(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.config
    edition = config.edition(args.edition)
    engine = ctx.engine
    if args.to:
        return _send_to(ctx, args)
    actor = cli_actor()
    if args.dry_run:
        return _dry_run(ctx, args)
    if args.resume:
        target = operations.resume_edition(config, engine, edition.name, actor)
        if target.resumed and not args.json:
            ctx.console.print(f"resuming mailing {target.mailing_id}, paused because: {target.paused_reason}",
                              markup=False, highlight=False)
    else:
        target = operations.send_now(config, engine, edition.name, actor)
    if target.mailing_id is None:
        _report(ctx, args, {"edition": edition.name, "mailing_id": None, "sent": 0},
                f"{edition.name}: no new briefs since the last mailing; nothing to send")
        return 0
    stop = Stop()
    with stop.on_signals():
        summary = _send(ctx, args, target.mailing_id, stop)
    return _finish(ctx, args, edition.name, summary, stop)


def _dry_run(ctx: Context, args: argparse.Namespace) -> int:
    """Render and count the unfinished mailing's remaining copies, or say what sending would make."""
    edition = ctx.config.edition(args.edition)
    plan = operations.send_plan(ctx.config, ctx.engine, edition.name)
    if plan.mailing_id is None:
        if args.resume:
            raise MailingError(f"edition {edition.name!r} has no unfinished mailing to resume", not_found=True)
        waiting = plan.new_briefs
        _report(ctx, args, {"edition": edition.name, "mailing_id": None, "dry_run": True, "waiting_briefs": waiting},
                f"{edition.name}: no unfinished mailing; sending now would make one from {waiting} new brief(s)")
        return 0
    stop = Stop()
    return _finish(ctx, args, edition.name, _send(ctx, args, plan.mailing_id, stop), stop)


def _finish(ctx: Context, args: argparse.Namespace, edition: str, summary: SendSummary, stop: Stop) -> int:
    _report(ctx, args, {"edition": edition, **summary.as_dict()}, _describe(edition, summary))
    if summary.stopped:
        ctx.console.print(f"newsletter: {summary.stopped}: {summary.where()}; "
                          f"`newsletter send {edition} --resume` carries on", markup=False, highlight=False)
        return stop.exit_code
    if summary.dry_run or summary.status == MailingStatus.DONE:
        return 0
    reason = f" ({summary.paused_reason})" if summary.paused_reason else ""
    ctx.console.print(f"newsletter: error: mailing {summary.mailing_id} is {summary.status}{reason}; "
                      f"`newsletter send {edition} --resume` carries on", markup=False, highlight=False)
    return 1


def _send(ctx: Context, args: argparse.Namespace, mailing_id: int, stop: Stop) -> SendSummary:
    columns = (TextColumn("[bold]mailing {task.fields[mailing]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=ctx.console, transient=False, disable=args.dry_run) as bar:
        task = bar.add_task("send", total=None, mailing=mailing_id)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return operations.deliver(ctx.config, ctx.engine, mailing_id, worker="cli", dry_run=args.dry_run,
                                  progress=progress, stop=stop)


def _describe(edition: str, s: SendSummary) -> str:
    if s.dry_run:
        return (f"{edition}: mailing {s.mailing_id} (dry run): {s.would_send} copies rendered, {s.suppressed} suppressed, "
                f"{s.skipped} skipped, nothing sent, in {s.duration_seconds:.1f} s ({s.per_second:.0f} messages/s)")
    return (f"{edition}: mailing {s.mailing_id} {s.status}: sent {s.sent}, failed {s.failed}, suppressed {s.suppressed}, "
            f"skipped {s.skipped}, retried {s.retried} in {s.duration_seconds:.1f} s ({s.per_second:.0f} messages/s); "
            f"ledger: {s.totals['sent']} sent, {s.totals['failed']} failed, "
            f"{s.totals['pending'] + s.totals['sending']} left")


def _send_to(ctx: Context, args: argparse.Namespace) -> int:
    """The mailing a reader would get next (`operations.current`) to one address; nothing is
    stored, not even a draft."""
    edition = ctx.config.edition(args.edition)
    if args.resume:
        raise NewsletterError("--to sends one test copy and --resume carries on a mailing: use one or the other")
    copy = operations.send_test_copy(ctx.config, ctx.engine, edition.name, args.to, cli_actor(), dry_run=args.dry_run,
                                     field_name="--to")
    data = copy.as_dict()
    if copy.current is None:
        _report(ctx, args, data, f"{edition.name}: no mailing yet and no new briefs for one; nothing sent to {copy.to}")
        return 0
    content = copy.current.content
    what = (f"mailing {content.id}" if copy.current.stored
            else f"a draft of the next mailing ({len(content.brief_ids)} briefs, not stored)")
    if args.dry_run:
        _report(ctx, args, {**data, "dry_run": True},
                f"{edition.name}: {what} rendered for {copy.to} ({copy.bytes} bytes, {content.subject!r}); nothing sent")
        return 0
    _report(ctx, args, data, f"{edition.name}: {what} sent to {copy.to} as a test (not recorded in the ledger)")
    return 0
