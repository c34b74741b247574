"""The ASGI application `newsletter serve` runs: each concern contributes its routes."""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from newsletter.config import Config
from newsletter.errors import ConfigError
from newsletter.web.pages import Pages
from newsletter.web.security import BodyTooLarge, Guard
from newsletter.web.webhooks import Webhooks
from newsletter.web import archive, archive_index, feed_list, feeds, home, redirect
from newsletter.web.console import Console
from newsletter.web.operator import OperatorApi
from newsletter.web.public import Public


async def health(request: Request) -> JSONResponse:
    """Readiness, for load balancers and monitors: the store answers and links can be signed
    (without the signing key no page that follows a link works)."""
    engine: sa.Engine = request.app.state.engine
    try:
        request.app.state.config.secret_key()
    except ConfigError as exc:
        return JSONResponse({"status": "not ready", "signing_key": str(exc)}, status_code=503)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return JSONResponse({"status": "error", "store": str(exc.__class__.__name__)}, status_code=503)
    return JSONResponse({"status": "ok"})


def create_app(config: Config, engine: sa.Engine) -> Starlette:
    pages = Pages(config, engine)
    public = Public(config, engine)
    operator = OperatorApi(config, engine)
    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        *home.routes(public),
        *pages.routes(),
        Route("/webhooks/{provider}", Webhooks(config, engine).handle, methods=["POST"]),
        *feed_list.routes(public),
        *feeds.routes(config, engine),
        # The mailing pages (/archive/<number>) before the edition ones, whose names are any text.
        *archive.routes(public),
        *archive_index.routes(public),
        *redirect.routes(config, engine),
        *operator.routes(),
        *Console(config, engine, operator.start_sending).routes(),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        pages.mailer.start()
        try:
            yield
        finally:
            pages.mailer.stop()
            await operator.wind_down()

    app = Starlette(routes=routes, middleware=[Middleware(Guard, too_large=pages.too_large)],
                    exception_handlers={BodyTooLarge: pages.body_too_large}, lifespan=lifespan)
    app.state.config = config
    app.state.engine = engine
    return app
