"""The operator API under `/api`: status, send an edition now, pause and resume mailings.

Every call needs `Authorization: Bearer <token>`, the token being the value of the
environment variable `[web].operator_token_env` names (compared in constant time). When
that variable is unset the API answers 503 and says so: it is off, not open.
Sends run in a background thread of `serve`; the answer (202) gives the mailing's id
and where to watch it. The store's lease and ledger make a send here and a scheduler's
send of the same edition harmless to each other.
"""

from __future__ import annotations

import hmac
import logging
import os
import signal
import threading
from typing import Any

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from newsletter import editions, locks, mailings, status
from newsletter.config import Config
from newsletter.errors import ConfigError, LockedError, MailingError
from newsletter.scheduler import Job, RunReport
from newsletter.states import OPEN, MailingStatus
from newsletter.store import schema, utcnow


log = logging.getLogger(__name__)


def _error(status_code: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers=headers or None)


class OperatorApi:
    def __init__(self, config: Config, engine: sa.Engine) -> None:
        self.config = config
        self.engine = engine
        self.job = Job(config, engine, worker=locks.owner_id("serve"))

    async def wind_down(self) -> None:
        """At shutdown: let the sends started here finish what is in flight and give the rest back.

        Runs on the event loop's (main) thread after the server stopped taking requests; a
        further SIGINT or SIGTERM meanwhile stops the sends at once.
        """
        self.job.stop.request()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {s: signal.signal(s, lambda signum, _frame: self.job.stop.request(signum))
                        for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            await run_in_threadpool(self.job.wait_for_sends)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        for s in self.job.stopped:
            log.warning("send stopped", extra={"mailing_id": s.mailing_id, "edition": s.edition, "detail": s.detail})

    def routes(self) -> list[BaseRoute]:
        return [Mount("/api", routes=[
            Route("/status", self._guarded(self.status), methods=["GET"]),
            Route("/editions/{name}/send", self._guarded(self.send), methods=["POST"]),
            Route("/mailings/{id:int}", self._guarded(self.mailing), methods=["GET"]),
            Route("/mailings/{id:int}/pause", self._guarded(self.pause), methods=["POST"]),
            Route("/mailings/{id:int}/resume", self._guarded(self.resume), methods=["POST"]),
        ])]

    def _refusal(self, request: Request) -> Response | None:
        env = self.config.web.operator_token_env
        expected = os.environ.get(env, "")
        if not expected:
            return _error(503, f"the operator API is off: set the environment variable {env} to a token")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
            return _error(401, "a valid operator token is required (Authorization: Bearer ...)",
                          **{"WWW-Authenticate": 'Bearer realm="newsletter operator API"'})
        return None

    def _guarded(self, handler):
        async def endpoint(request: Request) -> Response:
            refusal = self._refusal(request)
            if refusal is not None:
                return refusal
            try:
                return await handler(request)
            except MailingError as exc:
                return _error(404 if exc.not_found else 409, str(exc))
            except LockedError as exc:
                return _error(409, str(exc))
            except ConfigError as exc:
                return _error(404, str(exc))

        return endpoint

    async def status(self, request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(status.gather, self.config, self.engine))

    def _get(self, mailing_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return mailings.get(conn, mailing_id)

    async def mailing(self, request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(self._get, request.path_params["id"]))

    async def pause(self, request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(mailings.pause, self.engine, request.path_params["id"]))

    async def resume(self, request: Request) -> Response:
        mailing = await run_in_threadpool(mailings.resume, self.engine, request.path_params["id"])
        return JSONResponse({**mailing, "next": f"POST /api/editions/{mailing['edition']}/send, or the scheduler, sends it"})

    def _mailing_to_send(self, name: str) -> tuple[int | None, str]:
        """The edition's unfinished mailing, or a new one when there is news: (id, how)."""
        edition = self.config.edition(name)
        m = schema.mailings
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(m.c.id, m.c.status).where(m.c.edition == edition.name, m.c.status.in_(OPEN))
                .order_by(m.c.id.desc()).limit(1)
            ).first()
        if row is not None and row.status == MailingStatus.PAUSED:
            raise MailingError(f"mailing {row.id} of {name} is paused: POST /api/mailings/{row.id}/resume first")
        if row is not None:
            return row.id, "resumed"
        now = utcnow()
        mailing_id = editions.prepare_mailing(self.config, self.engine, edition.name, slot=f"manual-{now.isoformat()}",
                                              now=now)
        return mailing_id, "created"

    def _start_sending(self, mailing_id: int, edition: str) -> None:
        # The job skips a mailing this process is already sending, so a second press is harmless.
        threading.Thread(target=self.job.send, args=(mailing_id, edition, RunReport()), name=f"send {mailing_id}",
                         daemon=True).start()

    async def send(self, request: Request) -> Response:
        name = request.path_params["name"]
        mailing_id, how = await run_in_threadpool(self._mailing_to_send, name)
        if mailing_id is None:
            return JSONResponse({"edition": name, "mailing_id": None,
                                 "message": "no new briefs since the last mailing: nothing to send"})
        self._start_sending(mailing_id, name)
        return JSONResponse({"edition": name, "mailing_id": mailing_id, "mailing": how, "status": MailingStatus.SENDING,
                             "url": f"/api/mailings/{mailing_id}"}, status_code=202)
