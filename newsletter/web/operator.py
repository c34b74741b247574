"""The operator API under `/api`: status, send an edition now, pause and resume mailings.

Every call needs `Authorization: Bearer <token>`: the value of the environment variable
`[web].operator_token_env` names (compared in constant time; it acts as an admin), or an
operator's own token (`newsletter operators token NAME`; it acts with that operator's role,
and the audit log names them). When neither kind is set up the API answers 503 and says so:
it is off, not open. Every action goes through `newsletter.operations`.
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

import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from newsletter import audit, locks, operations, operators, status
from newsletter.audit import Actor
from newsletter.config import Config
from newsletter.errors import ConfigError, LockedError, MailingError
from newsletter.operators import ForbiddenError
from newsletter.scheduler import Job, RunReport
from newsletter.states import MailingStatus

# Who the audit log names for calls made with the shared `[web].operator_token_env` token.
SHARED_TOKEN_ACTOR = "operator-token"


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

    def _actor(self, request: Request) -> Actor | Response:
        """Who the bearer token names, or the answer that refuses the request."""
        env = self.config.web.operator_token_env
        expected = os.environ.get(env, "")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        given = given.strip() if scheme.lower() == "bearer" else ""
        origin = request.client.host if request.client else ""
        if expected and given and hmac.compare_digest(given.encode(), expected.encode()):
            return Actor(SHARED_TOKEN_ACTOR, operators.ADMIN, audit.API, origin)
        with self.engine.connect() as conn:
            operator = operators.by_token(conn, given) if given else None
            tokens_exist = operator is not None or operators.tokens_exist(conn)
        if operator is not None:
            return Actor(operator.name, operator.role, audit.API, origin)
        if not expected and not tokens_exist:
            return _error(503, f"the operator API is off: set the environment variable {env} to a token, "
                               "or give an operator one with `newsletter operators token NAME`")
        return _error(401, "a valid operator token is required (Authorization: Bearer ...)",
                      **{"WWW-Authenticate": 'Bearer realm="newsletter operator API"'})

    def _guarded(self, handler):
        async def endpoint(request: Request) -> Response:
            actor = await run_in_threadpool(self._actor, request)
            if isinstance(actor, Response):
                return actor
            try:
                return await handler(request, actor)
            except MailingError as exc:
                return _error(404 if exc.not_found else 409, str(exc))
            except LockedError as exc:
                return _error(409, str(exc))
            except ConfigError as exc:
                return _error(404, str(exc))
            except ForbiddenError as exc:
                return _error(403, str(exc))

        return endpoint

    async def status(self, request: Request, actor: Actor) -> Response:
        return JSONResponse(await run_in_threadpool(status.gather, self.config, self.engine))

    async def mailing(self, request: Request, actor: Actor) -> Response:
        return JSONResponse(await run_in_threadpool(operations.mailing, self.engine, request.path_params["id"]))

    async def pause(self, request: Request, actor: Actor) -> Response:
        return JSONResponse(await run_in_threadpool(operations.pause, self.engine, request.path_params["id"], actor))

    async def resume(self, request: Request, actor: Actor) -> Response:
        mailing = await run_in_threadpool(operations.resume, self.engine, request.path_params["id"], actor)
        return JSONResponse({**mailing, "next": f"POST /api/editions/{mailing['edition']}/send, or the scheduler, sends it"})

    def start_sending(self, mailing_id: int, edition: str) -> None:
        """Send the mailing in a background thread of `serve` (the console uses this too)."""
        # The job skips a mailing this process is already sending, so a second press is harmless.
        threading.Thread(target=self.job.send, args=(mailing_id, edition, RunReport()), name=f"send {mailing_id}",
                         daemon=True).start()

    async def send(self, request: Request, actor: Actor) -> Response:
        name = request.path_params["name"]
        target = await run_in_threadpool(operations.send_now, self.config, self.engine, name, actor)
        if target.mailing_id is None:
            return JSONResponse({"edition": name, "mailing_id": None,
                                 "message": "no new briefs since the last mailing: nothing to send"})
        self.start_sending(target.mailing_id, name)
        return JSONResponse({"edition": name, "mailing_id": target.mailing_id,
                             "mailing": "created" if target.created else "resumed", "status": MailingStatus.SENDING,
                             "url": f"/api/mailings/{target.mailing_id}"}, status_code=202)
