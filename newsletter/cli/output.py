"""Terminal-safe output: the one place every command prints through.

Names, titles, URLs and error messages come from subscribers, publishers and remote servers.
Printed as they are, `[link=...]` or `[/bold]` would be Rich markup (a clickable link to
anywhere, or a crash), and ESC, BEL or a bidi override would drive the operator's terminal.
So: no markup, emoji codes or highlighting is ever read from text, and control characters are
removed from everything shown; JSON keeps every character but escapes the ones a terminal acts on.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, JustifyMethod, OverflowMethod
from rich.style import Style
from rich.text import Text

from newsletter.terminal import clean, json_text

__all__ = ["SafeConsole", "clean", "error_line", "json_text", "styled"]


def styled(text: object, style: str) -> Text:
    """Untrusted text shown in a style of ours, never as markup."""
    return Text(clean(text), style=style)


class SafeConsole(Console):
    """A Rich console that reads no markup, emoji or highlighting from strings and strips control
    characters from them, in `print` and in every table cell alike."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, emoji=False, highlight=False, **kwargs)

    def render_str(self, text: str, *, style: str | Style = "", justify: JustifyMethod | None = None,
                   overflow: OverflowMethod | None = None, emoji: bool | None = None, markup: bool | None = None,
                   highlight: bool | None = None, highlighter: Any = None) -> Text:
        return Text(clean(text), style=style, justify=justify, overflow=overflow)


def error_line(message: object) -> str:
    """The one-line `newsletter: error: ...` a command prints on stderr for a failure."""
    return "newsletter: error: " + clean(message).replace("\n", " ")
