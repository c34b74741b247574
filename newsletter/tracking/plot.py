"""Charts of the engagement figures with matplotlib (the optional `newsletter[plots]` extra):
the trend of an edition's click and donate rates, and the click rate of each brief."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO, Sequence

from newsletter.errors import NewsletterError


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise NewsletterError(
            "--plot needs matplotlib: install the plots extra (pip install 'newsletter[plots]')") from exc
    matplotlib.use("Agg")  # files only: no display is needed or wanted
    import matplotlib.pyplot as plt

    return plt


def _short(title: str, limit: int = 48) -> str:
    return title if len(title) <= limit else title[: limit - 1] + "…"


def draw(path: Path | BinaryIO, title: str, trend: Sequence[dict[str, Any]], briefs: Sequence[dict[str, Any]],
         *, image_format: str | None = None) -> Path | BinaryIO:
    """Write the trend (clicks and donate clicks per 100 copies, per mailing) above the per-brief bars,
    to a file (its format from its suffix) or a binary buffer (`image_format`, e.g. "svg")."""
    plt = _pyplot()
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 4 + 0.35 * max(len(briefs), 4)),
                                         gridspec_kw={"height_ratios": [2, max(len(briefs), 4) * 0.35]})
    labels = [f"#{m['mailing_id']}\n{m['created_at'][:10]}" for m in trend]
    top.plot(labels, [100 * m["click_rate"] for m in trend], marker="o", label="clicks per 100 copies")
    top.plot(labels, [100 * m["donate_rate"] for m in trend], marker="s", label="donate clicks per 100 copies")
    top.set_title(title)
    top.set_ylim(bottom=0)
    top.legend(loc="upper left")
    top.grid(axis="y", alpha=0.3)
    names = [f"{_short(b['title'])} ({', '.join(b['countries']) or 'no country'})" for b in briefs]
    bottom.barh(names[::-1], [100 * b["click_rate"] for b in briefs][::-1], color="#a3191f")
    bottom.set_xlabel("clicks per 100 copies that carried the brief")
    bottom.set_xlim(left=0)
    figure.tight_layout()
    try:
        figure.savefig(path, format=image_format, dpi=110)
    except OSError as exc:
        raise NewsletterError(f"--plot: cannot write {path}: {exc.strerror}") from exc
    finally:
        plt.close(figure)
    return path
