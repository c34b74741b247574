"""Digest benchmark: time to render one mailing, and the cost per subscriber of personalising copies.

    .venv/bin/python bench/render.py [--copies 100000] [--dkim-copies 1000] [--rounds 20]

Renders mailings of 15 and 8 long-ish briefs (jinja2 -> MJML -> HTML, plus text), then builds
`--copies` complete RFC 5322 messages from each with `MessageFactory.build` (tokens, greeting,
Message-ID, substitution), and `--dkim-copies` more with DKIM signing (RSA-2048, dkimpy).
Single process, single thread, CPU time (so other load on the machine skews it less); nothing
leaves the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import sample  # noqa: E402
from newsletter.briefs import Brief  # noqa: E402
from newsletter.config import Config  # noqa: E402
from newsletter.digest import MailingContent, MessageFactory, render_mailing  # noqa: E402
from newsletter.recipients import Recipient  # noqa: E402

PARAGRAPH = (
    "Authorities in {place} seized a large shipment of cocaine hidden among fruit bound for a European "
    "port, and prosecutors said customs officials had helped the network move earlier loads through the "
    "same private terminal. Investigators arrested {n} people in raids in two cities on Tuesday. "
)


def brief(i: int) -> Brief:
    return sample.brief(i, PARAGRAPH, 6)


def config(folder: Path, dkim_key: Path | None) -> Config:
    dkim = f'[dkim]\nselector = "mail"\ndomain = "example.org"\nprivate_key_path = "{dkim_key}"\n' if dkim_key else ""
    return sample.write_config(
        folder / ("dkim.toml" if dkim_key else "config.toml"),
        publication='donate_params = { utm_source = "newsletter", utm_medium = "email" }\n'
                    'feedback_id_sender = "insightcrime"\n',
        edition='timezone = "America/Bogota"\n', tables=dkim,
    )


def render(cfg: Config, count: int, rounds: int) -> tuple[MailingContent, float]:
    edition = cfg.edition("daily-en")
    items = [brief(i) for i in range(1, count + 1)]
    times = []
    for _ in range(rounds):
        started = time.process_time()
        r = render_mailing(cfg, edition, items, mailing_id=1, created_at=sample.CREATED)
        times.append(time.process_time() - started)
    content = MailingContent(1, "daily-en", "en", r.subject, r.preheader, r.html, r.text, r.content_hash, sample.CREATED)
    return content, statistics.median(times)


def personalise(cfg: Config, content: MailingContent, copies: int) -> tuple[float, int]:
    factory = MessageFactory(cfg, content)
    recipients = [Recipient(i, f"reader{i}@example.com", f"Reader {i}") for i in range(1, copies + 1)]
    size = len(factory.build(recipients[0]))
    # CPU time of this process: the figure that matters on a shared machine, and what limits a sender.
    started = time.process_time()
    for recipient in recipients:
        factory.build(recipient)
    return (time.process_time() - started) / copies, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=100_000)
    parser.add_argument("--dkim-copies", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("NEWSLETTER_SECRET_KEY", "bench-secret-key-0123456789abcdefghijkl")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        key = folder / "dkim.pem"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        plain, signed = config(folder, None), config(folder, key)
        print(f"python {sys.version.split()[0]}, one process, one thread, CPU time")
        for count in (15, 8):
            content, seconds = render(plain, count, args.rounds)
            print(f"{count} briefs: render once {seconds * 1000:.1f} ms (median of {args.rounds}); "
                  f"HTML {len(content.html.encode()) / 1000:.1f} KB, text {len(content.text.encode()) / 1000:.1f} KB")
            per_copy, size = personalise(plain, content, args.copies)
            print(f"  build {args.copies:,} copies of {size / 1000:.1f} KB: {per_copy * 1e6:.1f} µs per copy "
                  f"({1 / per_copy:,.0f} copies/s)")
            per_copy, size = personalise(signed, content, args.dkim_copies)
            print(f"  build {args.dkim_copies:,} DKIM-signed copies (RSA-2048): {per_copy * 1e3:.2f} ms per copy "
                  f"({1 / per_copy:,.0f} copies/s)")


if __name__ == "__main__":
    main()
