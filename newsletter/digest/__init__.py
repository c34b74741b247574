"""The email digest: render a mailing once, then build each subscriber's message by substitution."""

from newsletter.digest.message import MailingContent, MessageFactory, MessageTemplate
from newsletter.digest.render import RenderedMailing, render_mailing

__all__ = ["MailingContent", "MessageFactory", "MessageTemplate", "RenderedMailing", "render_mailing"]
