"""Personalisation placeholders: how a mailing rendered once becomes each subscriber's copy.

A rendered mailing holds `%%nl:NAME%%` where a subscriber's values go. The HTML part uses
the `_html` names (values HTML-escaped), the text part and headers the bare names. Content
can never forge a placeholder: rendering scrubs the marker out of every value it outputs.
The subscriber-only footer links sit between `personal_begin` and `personal_end`, so the
web copy of a mailing can leave them out.
"""

from __future__ import annotations

import html
import re
from typing import Mapping

from markupsafe import Markup

from newsletter.digest.i18n import messages

MARK = "%%nl:"
# What a recipient's copy personalises; the HTML part uses NAME + "_html".
NAMES = ("name", "greeting", "unsubscribe_url", "preferences_url")
PERSONAL_BEGIN = "personal_begin"
PERSONAL_END = "personal_end"
PATTERN = re.compile(r"%%nl:([a-z_]+)%%")


class Placeholder(Markup):
    """A placeholder as templates output it: the one value that may carry the marker."""


def placeholder(name: str) -> Placeholder:
    return Placeholder(f"{MARK}{name}%%")


def scrub(value: str) -> str:
    """Defuse a placeholder marker inside content (a title cannot become someone's unsubscribe link)."""
    return value.replace(MARK, "%% nl:") if MARK in value else value


def split(rendered: str) -> list[str]:
    """Literal text and placeholder names, alternating: [text, name, text, name, ..., text]."""
    return PATTERN.split(rendered)


def fill(rendered: str, values: Mapping[str, str]) -> str:
    """Substitute every placeholder; a name without a value is an error in the caller."""
    return PATTERN.sub(lambda m: values[m.group(1)], rendered)


def values(name: str, greeting: str, unsubscribe_url: str, preferences_url: str) -> dict[str, str]:
    """Every placeholder's value, the `_html` ones escaped for the HTML part."""
    raw = {"name": name, "greeting": greeting, "unsubscribe_url": unsubscribe_url, "preferences_url": preferences_url}
    out = dict(raw)
    out.update({f"{k}_html": html.escape(v) for k, v in raw.items()})
    for marker in (PERSONAL_BEGIN, PERSONAL_END):
        out[marker] = out[f"{marker}_html"] = ""
    return out


def greeting(name: str, language: str) -> str:
    words = messages(language)
    name = " ".join(name.split())
    return words["hello_name"].format(name=name) if name else words["hello"]


_PERSONAL_BLOCK_HTML = re.compile(
    re.escape(placeholder(PERSONAL_BEGIN + "_html")) + ".*?" + re.escape(placeholder(PERSONAL_END + "_html")), re.S
)


def web_copy(rendered_html: str, language: str) -> str:
    """The mailing's HTML for anyone: a neutral greeting, no subscriber links."""
    without_links = _PERSONAL_BLOCK_HTML.sub("", rendered_html)
    return fill(without_links, values("", greeting("", language), "", ""))
