"""Plain text and excerpts from sanitised HTML: whole sentences up to a length, marked when cut."""

from __future__ import annotations

import re

from lxml import html as lxml_html

_BLOCKS = {"p", "li", "h2", "h3", "h4", "h5", "h6", "blockquote", "figcaption", "tr", "br", "div"}
# A sentence ends at . ! ? or … followed by optional closing quotes/brackets and white space.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’»)\]]*\s+")
ELLIPSIS = "…"


def plain_text(fragment: str) -> str:
    """The readable text of an HTML fragment: paragraphs separated by blank lines."""
    if not fragment.strip():
        return ""
    root = lxml_html.fragment_fromstring(fragment, create_parent="div")
    for element in root.iter():
        if element.tag in _BLOCKS:
            element.tail = "\n\n" + (element.tail or "")
    for figure in root.iter("figure"):
        # Image captions are not part of the text a reader skims in an excerpt.
        figure.drop_tree()
    text = root.text_content()
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(p for p in paragraphs if p)


def excerpt(fragment: str, max_chars: int) -> tuple[str, bool]:
    """Whole sentences of `fragment` up to `max_chars`; (text, cut). Cut text ends with an ellipsis.

    A first sentence longer than the limit is cut at a word boundary instead, so an excerpt is
    never empty when there is text.
    """
    text = plain_text(fragment)
    if len(text) <= max_chars:
        return text, False
    taken: list[str] = []
    length = 0
    for paragraph in text.split("\n\n"):
        for i, sentence in enumerate(_sentences(paragraph)):
            joiner = (" " if i else "\n\n") if taken else ""
            # Keep room for " …" so the excerpt, ellipsis included, stays within the limit.
            if length + len(joiner) + len(sentence) > max_chars - 2:
                return _finish(taken, text, max_chars), True
            taken.append(joiner + sentence)
            length += len(joiner) + len(sentence)
    return "".join(taken), False


def _sentences(paragraph: str) -> list[str]:
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
        out.append(paragraph[start:match.start() + len(match.group(0).rstrip())].strip())
        start = match.end()
    if start < len(paragraph):
        out.append(paragraph[start:].strip())
    return [s for s in out if s]


def _finish(taken: list[str], text: str, max_chars: int) -> str:
    if taken:
        return "".join(taken).rstrip() + " " + ELLIPSIS
    cut = text[: max(1, max_chars - 1)].rsplit(" ", 1)[0].rstrip(",;:—- ")
    return cut + ELLIPSIS
