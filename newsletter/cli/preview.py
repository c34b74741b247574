"""`newsletter preview EDITION --out DIR`: the next (or a given) mailing as a subscriber would get it.

Writes `<name>.html`, `<name>.txt` and `<name>.eml` so an editor can open the HTML in a browser,
read the text part, and load the `.eml` into a mail client. Nothing is stored or sent.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import sqlalchemy as sa

from newsletter import contents, editions
from newsletter.cli.context import Context
from newsletter.config import Config, EditionConfig
from newsletter.digest import MailingContent, MessageFactory
from newsletter.digest.i18n import messages
from newsletter.errors import MailingError, NewsletterError, SubscriberError
from newsletter.recipients import Recipient
from newsletter.store import schema, utcnow
from newsletter.subscribers import registry
from newsletter.subscribers.address import normalise

SAMPLE_EMAIL = "reader@example.org"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("preview", help="write the HTML, text and .eml of the next (or a given) mailing")
    parser.add_argument("edition", metavar="EDITION", help="the edition's name in the config")
    parser.add_argument("--subscriber", metavar="EMAIL", help="personalise for this subscriber (default: a sample reader)")
    parser.add_argument("--mailing", metavar="ID", type=int, help="an existing mailing instead of the next one")
    parser.add_argument("--out", metavar="DIR", required=True, help="folder to write the files into")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    parser.set_defaults(handler=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    config = ctx.config
    edition = config.edition(args.edition)
    with ctx.engine.connect() as conn:
        content = _existing(conn, edition, args.mailing) if args.mailing else _next(conn, config, edition)
        recipient, countries = _recipient(conn, args.subscriber, edition)
        if args.subscriber:
            # Their own copy: only the briefs about the countries they chose.
            content = contents.reader_copy(conn, config, edition, content, recipient.id, countries)
    # A preview is a test copy: its .eml never carries the Message-ID of a real delivery.
    factory = MessageFactory(config, content, test=True)
    html, text = factory.parts(recipient)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"{edition.name}-{'draft' if content.id is None else content.id}"
        paths = {"html": stem.with_suffix(".html"), "text": stem.with_suffix(".txt"), "eml": stem.with_suffix(".eml")}
        paths["html"].write_text(html, encoding="utf-8")
        paths["text"].write_text(text, encoding="utf-8")
        paths["eml"].write_bytes(factory.build(recipient))
    except OSError as exc:
        raise NewsletterError(f"preview: cannot write into {out}: {exc.strerror}") from exc
    report = {
        "edition": edition.name,
        "mailing_id": content.id,
        "existing": bool(args.mailing),
        "subject": content.subject,
        "briefs": len(content.brief_ids),
        "subscriber": recipient.email,
        "html_bytes": len(html.encode()),
        "files": {kind: str(path) for kind, path in paths.items()},
    }
    if args.json:
        ctx.print_json(report)
    else:
        ctx.out.print(f"{content.subject}", markup=False, highlight=False)
        for path in paths.values():
            ctx.out.print(f"  {path}", markup=False, highlight=False)
    return 0


def _existing(conn: sa.Connection, edition: EditionConfig, mailing_id: int) -> MailingContent:
    row = conn.execute(sa.select(schema.mailings).where(schema.mailings.c.id == mailing_id)).first()
    if row is None:
        raise MailingError(f"no mailing with id {mailing_id}", not_found=True)
    if row.edition != edition.name:
        raise MailingError(f"mailing {mailing_id} belongs to edition {row.edition!r}, not {edition.name!r}")
    return MailingContent.from_row(row)


def _next(conn: sa.Connection, config: Config, edition: EditionConfig) -> MailingContent:
    """What the edition would send now, exactly as `send` would create it."""
    content = editions.draft(conn, config, edition, utcnow())
    if content is None:
        raise NewsletterError(
            f"edition {edition.name!r} has no new briefs to send yet; preview an existing mailing with --mailing ID")
    return content


def _recipient(conn: sa.Connection, email: str | None, edition: EditionConfig) -> tuple[Recipient, list[str]]:
    if not email:
        return Recipient(None, SAMPLE_EMAIL, messages(edition.language)["sample_name"], edition.language), []
    try:
        address = normalise(email)
    except SubscriberError as exc:
        raise NewsletterError(f"--subscriber: {exc}") from exc
    row = registry.find(conn, address)
    if row is None:
        raise NewsletterError(f"--subscriber: no subscriber {address!r}; `newsletter subscribers add` adds one")
    return Recipient(row.id, row.email, row.name, row.language), list(row.countries or ())
