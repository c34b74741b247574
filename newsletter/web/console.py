"""The operator console under `/console/`: server-rendered pages over the operations layer.

Safe by default: it answers only once an operator account exists (`newsletter operators add`);
every page but the sign-in needs a live session (a random cookie, HttpOnly, SameSite=Strict,
Secure behind HTTPS, of which the store keeps only a hash; idle sessions end); every POST needs
the session's CSRF token. The sign-in form has a double-submit CSRF token of its own, and an
account locks after repeated failures. Pages carry the same headers as the subscriber pages;
their policy only adds what the console uses: its own script (live counts), fetches to itself
and frames from itself (the preview, which is sandboxed and may run no script).
"""

from __future__ import annotations

import hmac
import importlib.util
import tomllib
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from newsletter import audit, operations, operators, status
from newsletter.audit import Actor
from newsletter.config import Config
from newsletter.errors import ConfigError, LockedError, MailingError, NewsletterError, TransportError
from newsletter.operators import ForbiddenError, LockedOut, Operator, Session
from newsletter.slots import Schedule
from newsletter.states import DeliveryState
from newsletter.store import utcnow
from newsletter.web.i18n import FALLBACK, _accepted
from newsletter.web.security import CSRF_COOKIE, csrf_ok, csrf_token, new_csrf_cookie

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "console"
SESSION_COOKIE = "nl_console"
LANG_COOKIE = "nl_console_lang"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; script-src 'self'; connect-src 'self'; frame-src 'self'"
)
# The preview frame: the email's inline styles and remote images, nothing else; `sandbox` keeps
# it script-free even when opened on its own, and only the console may frame it.
FRAME_POLICY = (
    "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'; sandbox"
)
STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
# The mailing page shows the report's charts when matplotlib (the `plots` extra) is installed.
CHARTS = importlib.util.find_spec("matplotlib") is not None

Handler = Callable[[Request, Session], Awaitable[Response]]


class Console:
    def __init__(self, config: Config, engine: sa.Engine, start_sending: Callable[[int, str], None]) -> None:
        self.config = config
        self.engine = engine
        self.start_sending = start_sending
        self.words_by_language = _load_words(config)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(config.resolve("templates/console")), str(TEMPLATES)]),
            autoescape=jinja2.select_autoescape(["html"]),
        )

    @cached_property
    def key(self) -> bytes:
        return self.config.secret_key()

    def routes(self) -> list[BaseRoute]:
        signed_in = self._signed_in
        return [Mount("/console", routes=[
            Route("/", signed_in(self.overview), methods=["GET"]),
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", signed_in(self.logout, post=True), methods=["POST"]),
            Route("/live.json", signed_in(self.live), methods=["GET"]),
            Route("/editions/{name}", signed_in(self.edition), methods=["GET"]),
            Route("/editions/{name}/frame", signed_in(self.frame), methods=["GET"]),
            Route("/editions/{name}/test", signed_in(self.test_send, post=True), methods=["POST"]),
            Route("/editions/{name}/send", signed_in(self.confirm_send), methods=["GET"]),
            Route("/editions/{name}/send", signed_in(self.send_now, post=True), methods=["POST"]),
            Route("/mailings/{id:int}", signed_in(self.mailing), methods=["GET"]),
            Route("/mailings/{id:int}/chart.svg", signed_in(self.chart), methods=["GET"]),
            Route("/mailings/{id:int}/pause", signed_in(self.pause, post=True), methods=["POST"]),
            Route("/mailings/{id:int}/resume", signed_in(self.resume, post=True), methods=["POST"]),
            Route("/subscribers", signed_in(self.subscribers), methods=["GET"]),
            Route("/subscribers/export.csv", signed_in(self.export), methods=["GET"]),
            Route("/subscribers/{id:int}", signed_in(self.subscriber), methods=["GET"]),
            Route("/subscribers/{id:int}/suppress", signed_in(self.suppress, post=True), methods=["POST"]),
            Route("/audit", signed_in(self.audit_log), methods=["GET"]),
            Route("/static/{file}", self.static, methods=["GET"]),
        ])]

    # -- language, rendering ----------------------------------------------------------------------

    def lang(self, request: Request) -> str:
        """`?lang=` (remembered in a cookie), else the remembered one, else Accept-Language, else English."""
        for asked in (request.query_params.get("lang", ""), request.cookies.get(LANG_COOKIE, "")):
            if asked in self.words_by_language:
                return asked
        for tag in _accepted(request.headers.get("accept-language", "")):
            if tag in self.words_by_language:
                return tag
        return FALLBACK

    def words(self, lang: str) -> dict[str, str]:
        return {**self.words_by_language[FALLBACK], **self.words_by_language.get(lang, {})}

    def render(self, request: Request, template: str, title: str, *, session: Session | None = None,
               status_code: int = 200, csrf: str = "", **context: Any) -> HTMLResponse:
        lang = self.lang(request)
        words = self.words(lang)
        html = self.env.get_template(template).render(
            t=words, lang=lang, title=words.get(title, title), publication=self.config.publication,
            operator=session.operator if session else None, csrf=session.csrf if session else csrf,
            languages=[(code, self.words(code)["language_name"]) for code in self.words_by_language],
            notice=_flash(request, words), **context)
        response = HTMLResponse(html, status_code=status_code, headers=_headers())
        if request.query_params.get("lang") in self.words_by_language:
            response.set_cookie(LANG_COOKIE, lang, path="/console", httponly=True, samesite="strict",
                                secure=request.url.scheme == "https", max_age=365 * 86400)
        return response

    def message(self, request: Request, title: str, text: str, *, session: Session | None = None,
                status_code: int = 200) -> HTMLResponse:
        return self.render(request, "notice.html", title, session=session, status_code=status_code,
                           message=text, back="/console/" if session else "")

    # -- sessions and guards --------------------------------------------------------------------

    def _operators_exist(self) -> bool:
        with self.engine.connect() as conn:
            return operators.exist(conn)

    def _session(self, request: Request) -> Session | None:
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            return None
        with self.engine.begin() as conn:
            return operators.session(conn, token)

    def _off(self, request: Request) -> Response:
        words = self.words(self.lang(request))
        return self.message(request, "console", words["no_operators"], status_code=404)

    def _signed_in(self, handler: Handler, *, post: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not await run_in_threadpool(self._operators_exist):
                return self._off(request)
            session = await run_in_threadpool(self._session, request)
            if session is None:
                if post:
                    words = self.words(self.lang(request))
                    return self.message(request, "sign_in", words["session_ended"], status_code=403)
                return RedirectResponse("/console/login", status_code=303)
            if post:
                form = await _form(request)
                if form is None or not hmac.compare_digest(str(form.get("csrf", "")).encode(), session.csrf.encode()):
                    words = self.words(self.lang(request))
                    return self.message(request, "console", words["csrf_failed"], session=session, status_code=403)
                request.state.form = form
            try:
                return await handler(request, session)
            except ForbiddenError:
                words = self.words(self.lang(request))
                return self.message(request, "console", words["forbidden"], session=session, status_code=403)
            except (ConfigError, MailingError) as exc:
                not_found = isinstance(exc, ConfigError) or exc.not_found
                return self.message(request, "console", str(exc), session=session,
                                    status_code=404 if not_found else 409)
            except (LockedError, operations.OperationError, TransportError, NewsletterError) as exc:
                return self.message(request, "console", str(exc), session=session, status_code=409)

        return endpoint

    def actor(self, request: Request, session: Session) -> Actor:
        return Actor(session.operator.name, session.operator.role, audit.CONSOLE,
                     request.client.host if request.client else "")

    # -- sign in and out ----------------------------------------------------------------------------

    def _login_form(self, request: Request, *, error: str = "", name: str = "", status_code: int = 200) -> Response:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        fresh = not 16 <= len(cookie) <= 64
        if fresh:
            cookie = new_csrf_cookie()
        response = self.render(request, "login.html", "sign_in", csrf=csrf_token(self.key, cookie), error=error,
                               name=name, status_code=status_code)
        if fresh:
            response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict", path="/",
                                secure=request.url.scheme == "https")
        return response

    async def login_page(self, request: Request) -> Response:
        if not await run_in_threadpool(self._operators_exist):
            return self._off(request)
        if await run_in_threadpool(self._session, request) is not None:
            return RedirectResponse("/console/", status_code=303)
        return self._login_form(request)

    async def login(self, request: Request) -> Response:
        if not await run_in_threadpool(self._operators_exist):
            return self._off(request)
        words = self.words(self.lang(request))
        form = await _form(request)
        if form is None or not csrf_ok(self.key, request.cookies.get(CSRF_COOKIE), str(form.get("csrf", ""))):
            return self._login_form(request, error=words["csrf_failed"], status_code=403)
        name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
        origin = request.client.host if request.client else ""
        try:
            operator = await run_in_threadpool(operators.authenticate, self.engine, name, password)
        except LockedOut as exc:
            return self._login_form(request, error=words["locked"].format(until=f"{exc.until:%H:%M}"), name=name,
                                    status_code=429)
        if operator is None:
            await run_in_threadpool(self._record, Actor(name or "?", "", audit.CONSOLE, origin), "sign_in_failed")
            return self._login_form(request, error=words["login_failed"], name=name, status_code=401)
        token = await run_in_threadpool(self._open, operator, origin)
        response = RedirectResponse("/console/", status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/console",
                            secure=request.url.scheme == "https")
        return response

    def _open(self, operator: Operator, origin: str) -> str:
        with self.engine.begin() as conn:
            token = operators.open_session(conn, operator, origin)
            audit.record(conn, Actor(operator.name, operator.role, audit.CONSOLE, origin), "sign_in")
        return token

    def _record(self, actor: Actor, action: str, target: str = "") -> None:
        with self.engine.begin() as conn:
            audit.record(conn, actor, action, target)

    async def logout(self, request: Request, session: Session) -> Response:
        def close() -> None:
            with self.engine.begin() as conn:
                operators.close_session(conn, request.cookies.get(SESSION_COOKIE, ""))
                audit.record(conn, self.actor(request, session), "sign_out")

        await run_in_threadpool(close)
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/console", httponly=True, samesite="strict",
                               secure=request.url.scheme == "https")
        return response

    # -- pages ----------------------------------------------------------------------------------------

    async def overview(self, request: Request, session: Session) -> Response:
        def gather() -> dict[str, Any]:
            snapshot = status.gather(self.config, self.engine, mailing_limit=10)
            return {"sources": snapshot["sources"], "editions": snapshot["editions"], "recent": snapshot["mailings"],
                    "progress": operations.in_progress(self.engine)}

        data = await run_in_threadpool(gather)
        now = utcnow()
        for source in data["sources"]:
            source["last_run_text"] = _when(source["last_run_at"])
        for edition in data["editions"]:
            edition["next_local"] = _next_local(self.config.edition(edition["name"]), now)
        for m in data["progress"]:
            m["eta_text"] = _when(m["eta"])
        return self.render(request, "overview.html", "overview", session=session, section="overview", **data)

    async def live(self, request: Request, session: Session) -> Response:
        progress = await run_in_threadpool(operations.in_progress, self.engine)
        return JSONResponse([{"id": m["id"], "cells": {
            "status": m["status"], "sent": m["deliveries"]["sent"], "failed": m["deliveries"]["failed"],
            "left": m["deliveries"]["pending"] + m["deliveries"]["sending"], "eta": _when(m["eta"]) or "—"}}
            for m in progress], headers=_headers())

    async def edition(self, request: Request, session: Session) -> Response:
        edition = self.config.edition(request.path_params["name"])
        shown = await run_in_threadpool(operations.next_mailing, self.config, self.engine, edition.name)
        return self.render(request, "edition.html", edition.name, session=session, section="overview",
                           edition=edition, shown=shown.preview if shown else None,
                           text=shown.preview.text if shown else "", carried=shown.briefs if shown else [],
                           waiting=shown.waiting if shown else 0)

    async def frame(self, request: Request, session: Session) -> Response:
        edition = self.config.edition(request.path_params["name"])
        shown = await run_in_threadpool(operations.next_mailing, self.config, self.engine, edition.name)
        html = shown.preview.html if shown else ""
        return HTMLResponse(html, headers={"Content-Security-Policy": FRAME_POLICY, "X-Frame-Options": "SAMEORIGIN",
                                           "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                                           "Referrer-Policy": "no-referrer"})

    async def test_send(self, request: Request, session: Session) -> Response:
        name = request.path_params["name"]
        email = str(request.state.form.get("email", ""))
        copy = await run_in_threadpool(operations.send_test_copy, self.config, self.engine, name, email,
                                       self.actor(request, session))
        flash = "test_sent" if copy.sent else "test_nothing"
        return _redirect(f"/console/editions/{name}", flash, email=copy.to)

    async def confirm_send(self, request: Request, session: Session) -> Response:
        self.actor(request, session).require("send")
        edition = self.config.edition(request.path_params["name"])
        plan = await run_in_threadpool(operations.send_plan, self.config, self.engine, edition.name)
        return self.render(request, "confirm.html", "send_now", session=session, section="overview",
                           edition=edition, plan=plan)

    async def send_now(self, request: Request, session: Session) -> Response:
        name = request.path_params["name"]
        if not request.state.form.get("confirm"):
            return RedirectResponse(f"/console/editions/{name}/send", status_code=303)
        target = await run_in_threadpool(operations.send_now, self.config, self.engine, name,
                                         self.actor(request, session))
        if target.mailing_id is None:
            return _redirect(f"/console/editions/{name}", "send_nothing")
        self.start_sending(target.mailing_id, target.edition)
        return _redirect(f"/console/mailings/{target.mailing_id}", "send_started", id=str(target.mailing_id))

    async def mailing(self, request: Request, session: Session) -> Response:
        found = await run_in_threadpool(operations.mailing, self.engine, request.path_params["id"])
        found["eta_text"] = _when(found["eta"])
        found["engagement"] = await run_in_threadpool(operations.engagement, self.engine, found["id"])
        return self.render(request, "mailing.html", f"#{found['id']} {found['edition']}", session=session,
                           section="overview", m=found, states=list(DeliveryState), charts=CHARTS)

    async def chart(self, request: Request, session: Session) -> Response:
        """The report's charts as SVG (the same as `newsletter report --plot`), same-origin for the page."""
        svg = await run_in_threadpool(operations.engagement_chart, self.engine, request.path_params["id"])
        if svg is None:
            return Response("charts need the plots extra (matplotlib)", status_code=404, media_type="text/plain")
        return Response(svg, media_type="image/svg+xml", headers=_headers())

    async def pause(self, request: Request, session: Session) -> Response:
        mailing_id = request.path_params["id"]
        await run_in_threadpool(operations.pause, self.engine, mailing_id, self.actor(request, session))
        return _redirect(f"/console/mailings/{mailing_id}", "paused_done", id=str(mailing_id))

    async def resume(self, request: Request, session: Session) -> Response:
        mailing_id = request.path_params["id"]
        found = await run_in_threadpool(operations.resume, self.engine, mailing_id, self.actor(request, session))
        # Resuming here sends it too, as the scheduler would at its next cycle.
        self.start_sending(mailing_id, found["edition"])
        return _redirect(f"/console/mailings/{mailing_id}", "resumed_done", id=str(mailing_id))

    async def subscribers(self, request: Request, session: Session) -> Response:
        q = request.query_params.get("q", "")
        found = await run_in_threadpool(operations.find_subscribers, self.engine, q, self.actor(request, session))
        return self.render(request, "subscribers.html", "subscribers", session=session, section="subscribers",
                           q=q, found=found)

    async def subscriber(self, request: Request, session: Session) -> Response:
        try:
            found = await run_in_threadpool(operations.subscriber, self.engine, request.path_params["id"],
                                            self.actor(request, session))
        except NewsletterError as exc:
            if isinstance(exc, ForbiddenError):
                raise
            return self.message(request, "subscribers", str(exc), session=session, status_code=404)
        return self.render(request, "subscriber.html", found["email"], session=session, section="subscribers",
                           s=found)

    async def suppress(self, request: Request, session: Session) -> Response:
        subscriber_id = request.path_params["id"]
        found = await run_in_threadpool(operations.suppress_subscriber, self.engine, subscriber_id,
                                        self.actor(request, session))
        return _redirect(f"/console/subscribers/{subscriber_id}", "suppressed_done", email=found["email"])

    async def export(self, request: Request, session: Session) -> Response:
        text = await run_in_threadpool(operations.export_subscribers, self.engine, self.actor(request, session))
        return Response(text, media_type="text/csv; charset=utf-8", headers={
            **_headers(), "Content-Disposition": 'attachment; filename="subscribers.csv"'})

    async def audit_log(self, request: Request, session: Session) -> Response:
        entries = await run_in_threadpool(operations.audit_log, self.engine, 200)
        return self.render(request, "audit.html", "audit", session=session, section="audit", entries=entries)

    async def static(self, request: Request) -> Response:
        name = request.path_params["file"]
        if name not in STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        source = self.env.loader.get_source(self.env, name)[0]  # type: ignore[union-attr]
        return Response(source, media_type=STATIC[name], headers={"Cache-Control": "public, max-age=3600"})


def _load_words(config: Config) -> dict[str, dict[str, str]]:
    for folder in (config.resolve("templates/console"), TEMPLATES):
        path = folder / "messages.toml"
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"{path}: cannot read the console wording: {exc}") from exc
            if FALLBACK not in data:
                raise ConfigError(f"{path}: no [{FALLBACK}] table; it is the wording every language falls back to")
            return {lang: dict(words) for lang, words in data.items()}
    raise ConfigError(f"no messages.toml in {TEMPLATES}")


def _headers() -> dict[str, str]:
    return {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-store"}


async def _form(request: Request) -> FormData | None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    try:
        form = await request.form(max_files=0, max_fields=50)
    except Exception:  # a malformed body is a bad form, whatever the parser raised
        return None
    return form


def _redirect(path: str, flash: str, **values: str) -> RedirectResponse:
    """After a POST, to a page that says what happened (`?done=KEY` and the values it names)."""
    return RedirectResponse(f"{path}?{urlencode({'done': flash, **values})}", status_code=303)


def _flash(request: Request, words: dict[str, str]) -> str:
    key = request.query_params.get("done", "")
    if key not in FLASHES:
        return ""
    values = {k: request.query_params.get(k, "") for k in ("id", "email")}
    return words[key].format(**values)


FLASHES = frozenset({"test_sent", "test_nothing", "send_nothing", "send_started", "paused_done", "resumed_done",
                     "suppressed_done"})


def _when(iso: str | None) -> str:
    return f"{iso[:10]} {iso[11:16]} UTC" if iso else ""


def _next_local(edition: Any, now: datetime) -> str:
    due = Schedule.of(edition).next_after(now)
    if due is None:
        return ""
    local = due.astimezone(ZoneInfo(edition.timezone))
    return f"{local:%Y-%m-%d %H:%M} {edition.timezone}"
