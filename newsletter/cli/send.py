"""`newsletter send EDITION`: send now, whatever the schedule; `--resume` only carries on."""

from __future__ import annotations

import argparse
from typing import Any

import sqlalchemy as sa
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from newsletter import editions
from newsletter.cli.context import Context
from newsletter.digest import MailingContent, MessageFactory
from newsletter.errors import NewsletterError, SubscriberError
from newsletter.recipients import Recipient
from newsletter.send import ledger
from newsletter.send.dispatch import SendSummary, send_mailing
from newsletter.send.stop import Stop
from newsletter.send.testcopy import send_test
from newsletter.states import OPEN, MailingStatus
from newsletter.store import schema, utcnow
from newsletter.subscribers.address import normalise

m = schema.mailings


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("send", help="send an edition now: create its mailing if there is news, or carry on an unfinished one")
    parser.add_argument("edition", metavar="EDITION", help="the edition's name in the config")
    parser.add_argument("--resume", action="store_true", help="only carry on the edition's unfinished (or paused) mailing")
    parser.add_argument("--dry-run", action="store_true",
                        help="render and count the remaining copies (with --to: render that one copy); send and record nothing")
    parser.add_argument("--to", metavar="EMAIL",
                        help="send the edition's unfinished or newest mailing (none yet: a draft of the next) to this one "
                             "address as a test, recording nothing")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run)


def _unfinished(conn: sa.Connection, edition: str) -> sa.Row | None:
    return conn.execute(
        sa.select(m).where(m.c.edition == edition, m.c.status.in_(OPEN)).order_by(m.c.id.desc()).limit(1)
    ).first()


def _newest(conn: sa.Connection, edition: str) -> sa.Row | None:
    return conn.execute(sa.select(m).where(m.c.edition == edition).order_by(m.c.id.desc()).limit(1)).first()


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
    with engine.connect() as conn:
        mailing = _unfinished(conn, edition.name)
    if mailing is None and args.resume:
        raise NewsletterError(f"edition {edition.name!r} has no unfinished mailing to resume")
    if mailing is None and args.dry_run:
        with engine.connect() as conn:
            waiting = editions.waiting(conn, edition)
        _report(ctx, args, {"edition": edition.name, "mailing_id": None, "dry_run": True, "waiting_briefs": waiting},
                f"{edition.name}: no unfinished mailing; sending now would make one from {waiting} new brief(s)")
        return 0
    if mailing is None:
        now = utcnow()
        mailing_id = editions.prepare_mailing(config, engine, edition.name, slot=f"manual-{now.isoformat()}", now=now)
        if mailing_id is None:
            _report(ctx, args, {"edition": edition.name, "mailing_id": None, "sent": 0},
                    f"{edition.name}: no new briefs since the last mailing; nothing to send")
            return 0
    else:
        mailing_id = mailing.id
        if mailing.status == MailingStatus.PAUSED and not args.dry_run:
            with engine.begin() as conn:
                ledger.resume(conn, mailing_id)
            if not args.json:
                ctx.console.print(f"resuming mailing {mailing_id}, paused because: {mailing.paused_reason}",
                                  markup=False, highlight=False)
    stop = Stop()
    if args.dry_run:
        summary = _send(ctx, args, mailing_id, stop)
    else:
        with stop.on_signals():
            summary = _send(ctx, args, mailing_id, stop)
    _report(ctx, args, {"edition": edition.name, **summary.as_dict()}, _describe(edition.name, summary))
    if summary.stopped:
        ctx.console.print(f"newsletter: {summary.stopped}: {summary.where()}; "
                          f"`newsletter send {edition.name} --resume` carries on", markup=False, highlight=False)
        return stop.exit_code
    if summary.dry_run or summary.status == MailingStatus.DONE:
        return 0
    reason = f" ({summary.paused_reason})" if summary.paused_reason else ""
    ctx.console.print(f"newsletter: error: mailing {mailing_id} is {summary.status}{reason}; "
                      f"`newsletter send {edition.name} --resume` carries on", markup=False, highlight=False)
    return 1


def _send(ctx: Context, args: argparse.Namespace, mailing_id: int, stop: Stop) -> SendSummary:
    columns = (TextColumn("[bold]mailing {task.fields[mailing]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=ctx.console, transient=False, disable=args.dry_run) as bar:
        task = bar.add_task("send", total=None, mailing=mailing_id)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return send_mailing(ctx.config, ctx.engine, mailing_id, worker="cli", dry_run=args.dry_run, progress=progress,
                            stop=stop)


def _describe(edition: str, s: SendSummary) -> str:
    if s.dry_run:
        return (f"{edition}: mailing {s.mailing_id} (dry run): {s.would_send} copies rendered, {s.suppressed} suppressed, "
                f"{s.skipped} skipped, nothing sent, in {s.duration_seconds:.1f} s ({s.per_second:.0f} messages/s)")
    return (f"{edition}: mailing {s.mailing_id} {s.status}: sent {s.sent}, failed {s.failed}, suppressed {s.suppressed}, "
            f"skipped {s.skipped}, retried {s.retried} in {s.duration_seconds:.1f} s ({s.per_second:.0f} messages/s); "
            f"ledger: {s.totals['sent']} sent, {s.totals['failed']} failed, "
            f"{s.totals['pending'] + s.totals['sending']} left")


def _send_to(ctx: Context, args: argparse.Namespace) -> int:
    """The edition's unfinished (else newest) mailing, or when it has none yet a draft of the one
    sending now would create, to one address; nothing is stored, not even the draft."""
    edition = ctx.config.edition(args.edition)
    if args.resume:
        raise NewsletterError("--to sends one test copy and --resume carries on a mailing: use one or the other")
    try:
        args.to = normalise(args.to)
    except SubscriberError as exc:
        raise NewsletterError(f"--to: {exc}") from exc
    now = utcnow()
    with ctx.engine.connect() as conn:
        row = _unfinished(conn, edition.name) or _newest(conn, edition.name)
        mailing = MailingContent.from_row(row) if row else editions.draft(conn, ctx.config, edition, now)
    if mailing is None:
        _report(ctx, args, {"edition": edition.name, "mailing_id": None, "to": args.to, "sent": 0},
                f"{edition.name}: no mailing yet and no new briefs for one; nothing sent to {args.to}")
        return 0
    briefs = len(mailing.brief_ids)
    what = f"mailing {mailing.id}" if row else f"a draft of the next mailing ({briefs} briefs, not stored)"
    data = {"edition": edition.name, "mailing_id": row.id if row else None, "draft": row is None,
            "briefs": briefs, "subject": mailing.subject, "to": args.to}
    if args.dry_run:
        size = len(MessageFactory(ctx.config, mailing).build(Recipient(None, args.to)))
        _report(ctx, args, {**data, "dry_run": True, "bytes": size, "sent": 0},
                f"{edition.name}: {what} rendered for {args.to} ({size} bytes, {mailing.subject!r}); nothing sent")
        return 0
    result = send_test(ctx.config, mailing, args.to)
    _report(ctx, args, {**data, "sent": 1, "provider_message_id": result.provider_message_id},
            f"{edition.name}: {what} sent to {args.to} as a test (not recorded in the ledger)")
    return 0
