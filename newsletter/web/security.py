"""Defences shared by the pages: CSRF tokens, body size and headers (rate limits: `subscribers.limits`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "nl_csrf"
CSRF_FIELD = "csrf"
MAX_BODY = 64 * 1024
WEBHOOK_MAX_BODY = 5 * 1024 * 1024

HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # Page URLs carry subscriber tokens: never leak them to another site.
    (b"referrer-policy", b"no-referrer"),
]


def new_csrf_cookie() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(18)).decode()


def csrf_token(key: bytes, cookie: str) -> str:
    """The form field that goes with `cookie`: a signed double-submit token.

    A cross-site attacker can make the browser send the cookie but can neither read it nor
    compute its signature, so cannot fill in the field.
    """
    return hmac.new(key, b"csrf\0" + cookie.encode(), hashlib.sha256).hexdigest()[:40]


def csrf_ok(key: bytes, cookie: str | None, field: str | None) -> bool:
    if not cookie or not field:
        return False
    return hmac.compare_digest(csrf_token(key, cookie), field)


class BodyTooLarge(Exception):
    """Raised while reading a body that outgrows its limit; the app answers 413."""


def body_limit(path: str) -> int:
    # Providers batch many events into one webhook call; people's forms are small.
    return WEBHOOK_MAX_BODY if path.startswith("/webhooks/") else MAX_BODY


class Guard:
    """ASGI middleware: security headers on every answer that lacks them, and a cap on request bodies.

    A declared Content-Length over the cap is answered by `too_large` at once; a body that
    grows past it while being read raises BodyTooLarge for the app's exception handler.
    """

    def __init__(self, app: ASGIApp, *, too_large: ASGIApp) -> None:
        self.app = app
        self.too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A page that sets its own policy (the archive needs inline styles) keeps it.
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in HEADERS if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        limit = body_limit(scope["path"])
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self.too_large(scope, receive, send_with_headers)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        await self.app(scope, counted_receive, send_with_headers)
