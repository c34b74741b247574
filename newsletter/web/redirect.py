"""`/r/{token}` (a tracked link) and `/o/{token}` (the open pixel): count, then answer.

The token names a mailing and one of its stored links, so the redirect goes to exactly that
link and nowhere else (no open redirect: a forged, altered or foreign token, or a link the
mailing never had, gets 404). Each request adds one to a counter for its mailing, link and
day, or to a filtered counter when it is not a person (see `newsletter.tracking.filter`).
No cookie is set and neither the address nor the user agent is stored.
"""

from __future__ import annotations

import base64
import functools
from datetime import datetime, timezone

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from newsletter.config import Config
from newsletter.store import schema
from newsletter.tracking import counts, links, tokens
from newsletter.tracking.filter import ClickFilter

# The smallest transparent GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
# Never cached: every visit goes through us, and nobody else keeps the token's target.
NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff"}


def _not_found() -> Response:
    return PlainTextResponse("This link is not valid.", status_code=404, headers=NO_STORE)


def routes(config: Config, engine: sa.Engine, click_filter: ClickFilter | None = None) -> list[BaseRoute]:
    judge = click_filter or ClickFilter()

    @functools.cache
    def key() -> bytes:
        # Read when the first link is followed, not at start: `serve` starts without the signing
        # key and says so on /health, as the other pages do.
        return config.secret_key()

    def count(request: Request, mailing_id: int, link_no: int) -> None:
        day = datetime.now(timezone.utc).date()
        verdict, refile = judge.judge(
            method=request.method, user_agent=request.headers.get("user-agent", ""),
            client=request.client.host if request.client else "", mailing_id=mailing_id, link_no=link_no, day=day)
        with engine.begin() as conn:
            counts.add(conn, mailing_id, link_no, day, verdict)
            for earlier in refile:
                counts.add(conn, earlier.mailing_id, earlier.link_no, earlier.day, counts.COUNTED, -1)
                counts.add(conn, earlier.mailing_id, earlier.link_no, earlier.day, "scanner")

    def follow(request: Request, token: str) -> str | None:
        try:
            mailing_id, link_no = tokens.read(key(), token)
        except tokens.TrackingTokenError:
            return None
        if link_no == tokens.OPEN:
            return None
        with engine.connect() as conn:
            link = links.find(conn, mailing_id, link_no)
        if link is None:
            return None
        count(request, mailing_id, link_no)
        return link.url

    def opened(request: Request, token: str) -> bool:
        try:
            mailing_id, link_no = tokens.read(key(), token)
        except tokens.TrackingTokenError:
            return False
        if link_no != tokens.OPEN or not config.tracking.opens:
            return False
        m = schema.mailings
        with engine.connect() as conn:
            if conn.scalar(sa.select(m.c.id).where(m.c.id == mailing_id)) is None:
                return False
        count(request, mailing_id, tokens.OPEN)
        return True

    async def click(request: Request) -> Response:
        url = await run_in_threadpool(follow, request, request.path_params["token"])
        if url is None:
            return _not_found()
        return RedirectResponse(url, status_code=302, headers=NO_STORE)

    async def pixel(request: Request) -> Response:
        if not await run_in_threadpool(opened, request, request.path_params["token"]):
            return _not_found()
        return Response(PIXEL, media_type="image/gif", headers=NO_STORE)

    return [
        Route("/r/{token}", click, methods=["GET", "HEAD"]),
        Route("/o/{token}", pixel, methods=["GET", "HEAD"]),
    ]
