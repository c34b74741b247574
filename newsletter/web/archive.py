"""`/archive/{mailing_id}`: a mailing's "view in browser" page, the same HTML every subscriber got.

Not personalised: the greeting is neutral and the subscriber-only links (preferences,
unsubscribe) are left out, so the page can be shared and cached.
"""

from __future__ import annotations

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from newsletter.config import Config
from newsletter.digest.placeholders import web_copy
from newsletter.states import MailingStatus
from newsletter.store import schema

# The digest needs inline styles and remote images, nothing else: no script, no frames, no forms.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
CACHE_CONTROL = "public, max-age=300"
MAX_ID = 2**31 - 1


def routes(config: Config, engine: sa.Engine) -> list[BaseRoute]:
    def load(mailing_id: int) -> str | None:
        m = schema.mailings
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(m.c.html, m.c.language).where(m.c.id == mailing_id, m.c.status != MailingStatus.CANCELLED)
            ).first()
        if row is None or row.html is None:
            return None
        return web_copy(row.html, row.language)

    async def page(request: Request) -> Response:
        mailing_id = request.path_params["mailing_id"]
        # Beyond a database integer no mailing exists; the store would fail on the number itself.
        html = await run_in_threadpool(load, mailing_id) if mailing_id <= MAX_ID else None
        if html is None:
            return PlainTextResponse("There is no such newsletter in the archive.", status_code=404)
        return HTMLResponse(html, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY,
                                           "Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"})

    return [Route("/archive/{mailing_id:int}", page, methods=["GET", "HEAD"])]
