"""`newsletter preview EDITION --out DIR`: the next (or a given) mailing as a subscriber would get it.

Writes `<name>.html`, `<name>.txt` and `<name>.eml` so an editor can open the HTML in a browser,
read the text part, and load the `.eml` into a mail client. Nothing is stored or sent.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from newsletter import operations
from newsletter.cli.context import Context
from newsletter.errors import NewsletterError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("preview", help="write the HTML, text and .eml of the next (or a given) mailing")
    parser.add_argument("edition", metavar="EDITION", help="the edition's name in the config")
    parser.add_argument("--subscriber", metavar="EMAIL", help="personalise for this subscriber (default: a sample reader)")
    parser.add_argument("--mailing", metavar="ID", type=int, help="an existing mailing instead of the next one")
    parser.add_argument("--out", metavar="DIR", required=True, help="folder to write the files into")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")
    parser.set_defaults(handler=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    edition = ctx.config.edition(args.edition)
    shown = operations.preview(ctx.config, ctx.engine, edition.name, mailing_id=args.mailing, subscriber=args.subscriber)
    content = shown.content
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"{edition.name}-{'draft' if content.id is None else content.id}"
        paths = {"html": stem.with_suffix(".html"), "text": stem.with_suffix(".txt"), "eml": stem.with_suffix(".eml")}
        paths["html"].write_text(shown.html, encoding="utf-8")
        paths["text"].write_text(shown.text, encoding="utf-8")
        paths["eml"].write_bytes(shown.message)
    except OSError as exc:
        raise NewsletterError(f"preview: cannot write into {out}: {exc.strerror}") from exc
    report = {
        "edition": edition.name,
        "mailing_id": content.id,
        "existing": shown.stored,
        "subject": content.subject,
        "briefs": len(content.brief_ids),
        "subscriber": shown.recipient.email,
        "html_bytes": len(shown.html.encode()),
        "files": {kind: str(path) for kind, path in paths.items()},
    }
    if args.json:
        ctx.print_json(report)
    else:
        ctx.out.print(f"{content.subject}", markup=False, highlight=False)
        for path in paths.values():
            ctx.out.print(f"  {path}", markup=False, highlight=False)
    return 0
