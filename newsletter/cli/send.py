"""`newsletter send EDITION`: send now, whatever the schedule; `--resume` only carries on.

Once the mailing is created (rendered) or picked up, the command sends it from a fresh image of
itself (`os.execv`, same process): the renderer, the audit log's password hashing and what
creating the mailing left on the heap (16 MB on SQLite) would otherwise stay resident beside the
send workers for the whole send. The new image gets the mailing's id in `--sending`, an option
for this hand-over only, and SIGINT and SIGTERM held across the exec, so a signal that arrives
meanwhile reaches its Stop instead of killing it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from newsletter.cli.context import Context
from newsletter.errors import MailingError, NewsletterError
from newsletter.send.dispatch import SendSummary, send_mailing
from newsletter.send.stop import SIGNALS, Stop
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
    # The hand-over to a fresh image of the command (see the module's doc), not for people.
    parser.add_argument("--sending", type=int, metavar="MAILING_ID", help=argparse.SUPPRESS)
    parser.set_defaults(handler=run)


def _report(ctx: Context, args: argparse.Namespace, data: dict[str, Any], line: str) -> None:
    if args.json:
        ctx.print_json(data)
    else:
        ctx.out.print(line, markup=False, highlight=False)


def run(ctx: Context, args: argparse.Namespace) -> int:
    if args.sending is not None:
        return _send_handed_over(ctx, args)
    # Imported here: the image that sends after the hand-over needs neither (10 MB).
    from newsletter import operations
    from newsletter.audit import cli_actor

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
    _hand_over(ctx, args, target.mailing_id)
    stop = Stop()
    with stop.on_signals():
        summary = _send(ctx, args, target.mailing_id, stop)
    return _finish(ctx, args, edition.name, summary, stop)


def _started_as_the_command() -> bool:
    """Whether this process is the `newsletter` command itself (console script or `python -m
    newsletter`), not a program that called `cli.main` and must not be replaced."""
    from newsletter import cli

    return getattr(sys.modules.get("__main__"), "main", None) is cli.main


def _hand_over(ctx: Context, args: argparse.Namespace, mailing_id: int) -> None:
    """Carry on in a fresh image of the command that only sends `mailing_id` (see the module's
    doc); returns only where that cannot be done, and this image sends."""
    if not (sys.platform.startswith("linux") and _started_as_the_command()):
        return
    argv = [sys.executable, "-m", "newsletter", "--config", str(ctx.config_path)]
    argv += ["--log-json"] * args.log_json + ["--verbose"] * args.verbose
    argv += ["send", args.edition, "--sending", str(mailing_id)] + ["--json"] * args.json
    ctx.close()
    sys.stdout.flush()
    sys.stderr.flush()
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        os.execv(sys.executable, argv)
    except OSError:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


def _send_handed_over(ctx: Context, args: argparse.Namespace) -> int:
    """The send of the mailing this command created or picked up before it handed over."""
    # The image before proved the DKIM keys sign, and only the workers sign: not loading them
    # here keeps cryptography (9 MB) out of this process for the whole send.
    ctx.probe_keys = False
    stop = Stop()
    with stop.on_signals():
        # Held since the exec: one that came meanwhile is handled now, by the Stop.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        summary = _send(ctx, args, args.sending, stop)
    return _finish(ctx, args, ctx.config.edition(args.edition).name, summary, stop)


def _dry_run(ctx: Context, args: argparse.Namespace) -> int:
    """Render and count the unfinished mailing's remaining copies, or say what sending would make."""
    from newsletter import operations

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

        # `operations.deliver` is this call; the decision to send was recorded before.
        return send_mailing(ctx.config, ctx.engine, mailing_id, worker="cli", dry_run=args.dry_run,
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
    from newsletter import operations
    from newsletter.audit import cli_actor

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
