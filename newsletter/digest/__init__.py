"""The email digest: render a mailing once, then build each subscriber's message by substitution."""

from typing import TYPE_CHECKING, Any

from newsletter.digest.message import MailingContent, MessageFactory, MessageTemplate

if TYPE_CHECKING:
    from newsletter.digest.render import RenderedMailing, render_mailing

__all__ = ["MailingContent", "MessageFactory", "MessageTemplate", "RenderedMailing", "render_mailing"]


def __getattr__(name: str) -> Any:
    # Rendering (Jinja2, MJML, lxml) is loaded on first use: a send worker builds messages from
    # a mailing rendered and stored earlier, and must not carry the renderer's memory.
    if name in ("RenderedMailing", "render_mailing"):
        from newsletter.digest import render

        return getattr(render, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
