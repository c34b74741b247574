"""The small hierarchy of errors the program reports to operators as one clear line each."""


class NewsletterError(Exception):
    """Base of every error the CLI turns into a message and a non-zero exit code."""


class ConfigError(NewsletterError):
    """The configuration or the environment is wrong; nothing has been done yet."""


class StoreError(NewsletterError):
    """The store cannot be opened, migrated or written."""


class SourceError(NewsletterError):
    """One source could not be fetched or parsed; other sources carry on."""


class RenderError(NewsletterError):
    """A template or a mailing could not be rendered."""


class RecipientError(RenderError):
    """One recipient's copy cannot be made (their address cannot go on the wire): that delivery
    fails on its own; the mailing and every other copy carry on."""


class TransportError(NewsletterError):
    """A message could not be handed to the transport.

    `permanent` says whether retrying can help (SMTP 5xx, a provider's rejection).
    """

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class SubscriberError(NewsletterError):
    """An address or a subscriber's fields are invalid, or the change is not allowed (suppressed)."""


class LockedError(NewsletterError):
    """Another process holds the lock for this work."""


class MailingError(NewsletterError):
    """A mailing does not exist (`not_found`), or its state does not allow what was asked."""

    def __init__(self, message: str, *, not_found: bool = False):
        super().__init__(message)
        self.not_found = not_found
