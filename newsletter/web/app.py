"""The ASGI application `newsletter serve` runs: each concern contributes its routes."""

from __future__ import annotations

import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from newsletter.config import Config
from newsletter.web.pages import Pages
from newsletter.web.security import BodyTooLarge, Guard
from newsletter.web.webhooks import Webhooks
from newsletter.web import archive, feeds
from newsletter.web.console import Console
from newsletter.web.operator import OperatorApi


async def health(request: Request) -> JSONResponse:
    """Liveness and store reachability, for load balancers and monitors."""
    engine: sa.Engine = request.app.state.engine
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return JSONResponse({"status": "error", "store": str(exc.__class__.__name__)}, status_code=503)
    return JSONResponse({"status": "ok"})


def create_app(config: Config, engine: sa.Engine) -> Starlette:
    pages = Pages(config, engine)
    operator_api = OperatorApi(config, engine)
    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        *pages.routes(),
        Route("/webhooks/{provider}", Webhooks(config, engine).handle, methods=["POST"]),
        *feeds.routes(config, engine),
        *archive.routes(config, engine),
        *operator_api.routes(),
        *Console(config, engine, operator_api.start_sending).routes(),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(Guard, too_large=pages.too_large)],
                    exception_handlers={BodyTooLarge: pages.body_too_large})
    app.state.config = config
    app.state.engine = engine
    return app
