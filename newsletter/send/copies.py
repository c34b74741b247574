"""Each copy of a mailing ready to build messages from: a MessageFactory per content key.

A mailing's copies were rendered and frozen when it was created (`newsletter.contents`); a
worker process loads each one the first time one of its deliveries needs it (through `load`: a
worker asks its command, which reads the store), and its threads share what was loaded, so a
copy is prepared once per process however many readers get it.
"""

from __future__ import annotations

import threading
from typing import Callable

from newsletter.config import Config
from newsletter.digest import MailingContent, MessageFactory
from newsletter.send.envelopes import provider_template
from newsletter.send.transport import MessageTemplate


class CopyFactories:
    """`get(key)`: the factory of copy `key` (None: the whole mailing) and its provider template."""

    def __init__(self, config: Config, mailing: MailingContent, load: Callable[[str], MailingContent], *,
                 provider: bool) -> None:
        self._config = config
        self._mailing = mailing
        self._load = load
        self._provider = provider
        self._lock = threading.Lock()
        self._ready: dict[str | None, tuple[MessageFactory, MessageTemplate | None]] = {}
        self.get(None)  # the whole mailing: a broken one fails the worker at start, not mid-send

    @property
    def whole(self) -> MessageFactory:
        return self.get(None)[0]

    def get(self, key: str | None) -> tuple[MessageFactory, MessageTemplate | None]:
        ready = self._ready.get(key)
        if ready is not None:
            return ready
        with self._lock:
            if key not in self._ready:
                content = self._mailing if key is None else self._load(key)
                factory = MessageFactory(self._config, content)
                self._ready[key] = (factory, provider_template(factory) if self._provider else None)
            return self._ready[key]
