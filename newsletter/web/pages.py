"""The subscriber pages: subscribe (double opt-in), confirm, preferences, unsubscribe, data.

Every link a subscriber follows carries a signed token for one subscriber and one purpose.
Answers never tell whether an address is on the list: subscribing always says "check your
inbox". GET never changes anything (mail scanners open links); changes are POSTs, with a
signed double-submit CSRF token, except the RFC 8058 one-click unsubscribe, which mail
providers send without cookies and whose URL token is the proof.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import jinja2
import sqlalchemy as sa
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from newsletter import tokens
from newsletter.config import Config
from newsletter.errors import SubscriberError
from newsletter.store import schema, utcnow
from newsletter.subscribers import data_links, limits, registry
from newsletter.subscribers import requests as subscribe_requests
from newsletter.subscribers.address import needs_smtputf8, normalise
from newsletter.subscribers.profile import Profile, Vocabulary
from newsletter.web import choices
from newsletter.web.confirmation import Mailer
from newsletter.web.i18n import Messages, page_language, template_dirs
from newsletter.web.public import language_feeds
from newsletter.web.security import CSRF_COOKIE, CSRF_FIELD, csrf_ok, csrf_token, new_csrf_cookie

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# A confirmation link names one subscribe request; a data link one single-use data link.
CONFIRM_PURPOSE = "subscribe_request"
DATA_PURPOSE = "data_link"


class BadForm(Exception):
    """The body is not a readable form."""


class Pages:
    def __init__(self, config: Config, engine: sa.Engine) -> None:
        self.config = config
        self.engine = engine
        self.messages = Messages(config)
        self.vocabulary = Vocabulary(config)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(config)]),
            autoescape=jinja2.select_autoescape(["html"]),
        )
        # Feed autodiscovery on every page (base.html), as on the public pages.
        self.env.globals["alternates"] = ()
        self.env.globals["language_feeds"] = lambda lang: language_feeds(config, lang)
        self.mailer = Mailer(config, engine, self.env, self.messages)

    @cached_property
    def key(self) -> bytes:
        return self.config.secret_key()

    def routes(self) -> list[Route]:
        return [
            Route("/subscribe", self.subscribe_form, methods=["GET"]),
            Route("/subscribe", self.subscribe, methods=["POST"]),
            Route("/confirm/{token}", self.confirm_page, methods=["GET"]),
            Route("/confirm/{token}", self.confirm, methods=["POST"]),
            Route("/preferences/{token}", self.preferences_page, methods=["GET"]),
            Route("/preferences/{token}", self.save_preferences, methods=["POST"]),
            Route("/unsubscribe/{token}", self.unsubscribe_page, methods=["GET"]),
            Route("/unsubscribe/{token}", self.unsubscribe, methods=["POST"]),
            Route("/preferences/{token}/data", self.request_data_link, methods=["POST"]),
            Route("/data/{token}", self.data_page, methods=["GET"]),
            Route("/data/{token}", self.data_action, methods=["POST"]),
            Route("/static/web.css", self.stylesheet, methods=["GET"]),
        ]

    # -- rendering ----------------------------------------------------------------------------

    def _csrf_cookie(self, request: Request) -> str:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if len(cookie) < 16 or len(cookie) > 64:
            cookie = request.state.new_csrf = new_csrf_cookie()
        return cookie

    def render(self, request: Request, lang: str, template: str, title_key: str, *, status: int = 200,
               **context: Any) -> HTMLResponse:
        words = self.messages.words(lang)
        needs_csrf = template in ("subscribe.html", "action.html", "preferences.html", "data.html")
        csrf = csrf_token(self.key, self._csrf_cookie(request)) if needs_csrf else ""
        html = self.env.get_template(template).render(
            t=words, lang=lang, title=words[title_key], publication=self.config.publication, csrf=csrf,
            languages=[(code, self.messages.words(code)["language_name"]) for code in self.messages.languages],
            **context,
        )
        response = HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
        new_cookie = getattr(request.state, "new_csrf", None)
        if new_cookie:
            response.set_cookie(CSRF_COOKIE, new_cookie, httponly=True, samesite="strict", path="/",
                                secure=request.url.scheme == "https")
        return response

    def notice(self, request: Request, lang: str, title_key: str, message: str, *, status: int = 200,
               links: list[tuple[str, str]] | None = None, role: str = "") -> HTMLResponse:
        return self.render(request, lang, "notice.html", title_key, status=status, message=message,
                           links=links or [], role=role)

    def lang(self, request: Request, subscriber_language: str | None = None) -> str:
        return page_language(request, self.messages.languages, subscriber_language)

    def url(self, path: str) -> str:
        return self.config.publication.public_url.rstrip("/") + path

    async def too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        words = self.messages.words(self.lang(request))
        await self.notice(request, self.lang(request), "too_large_title", words["too_large"], status=413)(
            scope, receive, send)

    async def body_too_large(self, request: Request, exc: Exception) -> Response:
        lang = self.lang(request)
        return self.notice(request, lang, "too_large_title", self.messages.words(lang)["too_large"], status=413)

    async def stylesheet(self, request: Request) -> Response:
        source = self.env.loader.get_source(self.env, "web.css")[0]  # type: ignore[union-attr]
        return Response(source, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})

    # -- input ----------------------------------------------------------------------------------

    async def form(self, request: Request) -> FormData:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in FORM_TYPES:
            raise BadForm()
        try:
            form = await request.form(max_files=0, max_fields=300)
        # Starlette turns a multipart parse error into HTTPException(400) inside an app.
        except (MultiPartException, HTTPException, ValueError, UnicodeDecodeError) as exc:
            raise BadForm() from exc
        if any(not isinstance(v, str) for _, v in form.multi_items()):
            raise BadForm()
        return form

    def bad_form(self, request: Request, lang: str) -> HTMLResponse:
        return self.notice(request, lang, "bad_request_title", self.messages.words(lang)["bad_request"],
                           status=400, role="alert")

    def csrf_failed(self, request: Request, lang: str) -> HTMLResponse:
        return self.notice(request, lang, "forbidden_title", self.messages.words(lang)["csrf_failed"],
                           status=403, role="alert")

    def csrf_valid(self, request: Request, form: FormData) -> bool:
        return csrf_ok(self.key, request.cookies.get(CSRF_COOKIE), str(form.get(CSRF_FIELD, "")))

    def token_id(self, request: Request, purpose: str) -> tuple[int | None, str | None]:
        """The subscriber id a link's token names, or (None, the message key that says why it is bad)."""
        try:
            return tokens.read(self.key, purpose, request.path_params["token"]), None
        except tokens.TokenError as exc:
            return None, "expired_link" if "expired" in str(exc) else "bad_link"

    def subscriber_from(self, request: Request, purpose: str) -> tuple[sa.Row | None, str | None]:
        """The subscriber a link's token names; (None, reason) for a bad token (an erased one: (None, None))."""
        subscriber_id, reason = self.token_id(request, purpose)
        if subscriber_id is None:
            return None, reason
        with self.engine.connect() as conn:
            return registry.get(conn, subscriber_id), None

    async def posted(self, request: Request, purpose: str) -> tuple[FormData, int] | Response:
        """A POST's form and the subscriber id its link names, or the page that answers a bad form or link."""
        try:
            form = await self.form(request)
        except BadForm:
            return self.bad_form(request, self.lang(request))
        subscriber_id, reason = self.token_id(request, purpose)
        if subscriber_id is None:
            return self.bad_link(request, reason or "bad_link")
        return form, subscriber_id

    async def posted_change(self, request: Request, purpose: str) -> tuple[FormData, sa.Row, str] | Response:
        """What a CSRF-checked POST on a known subscriber needs: the form, the subscriber and the page
        language (theirs unless the link asks for another), or the page that answers why not."""
        posted = await self.posted(request, purpose)
        if isinstance(posted, Response):
            return posted
        form, subscriber_id = posted

        def get() -> sa.Row | None:
            with self.engine.connect() as conn:
                return registry.get(conn, subscriber_id)

        row = await run_in_threadpool(get)
        if row is None:
            return self.bad_link(request, "bad_link")
        lang = self.lang(request, row.language)
        if not self.csrf_valid(request, form):
            return self.csrf_failed(request, lang)
        return form, row, lang

    def bad_link(self, request: Request, reason: str) -> HTMLResponse:
        lang = self.lang(request)
        words = self.messages.words(lang)
        return self.notice(request, lang, "bad_link_title", words[reason], status=400, role="alert",
                           links=[("/subscribe?lang=" + lang, words["subscribe_title"])])

    @staticmethod
    def consent(request: Request, form_version: str | None = None) -> registry.Consent:
        client = request.client.host if request.client else None
        return registry.Consent(client, request.headers.get("user-agent", "")[:512] or None, form_version)

    # -- subscribe and confirm --------------------------------------------------------------------

    async def subscribe_form(self, request: Request) -> Response:
        lang = self.lang(request)
        chosen = lang if lang in self.vocabulary.languages else self.vocabulary.default_language
        offered = await run_in_threadpool(self.choices, lang, chosen, [], [])
        return self.render(request, lang, "subscribe.html", "subscribe_title", error="", email="", name="", **offered)

    async def subscribe(self, request: Request) -> Response:
        """Always the same answer, after the same work: whatever the address's state, one rate
        hit and one request row are written and the mailer decides later what to send."""
        lang = self.lang(request)
        words = self.messages.words(lang)
        try:
            form = await self.form(request)
        except BadForm:
            return self.bad_form(request, lang)
        if not self.csrf_valid(request, form):
            return self.csrf_failed(request, lang)
        email_text = str(form.get("email", ""))[:400]
        name = str(form.get("name", ""))[:200]
        editions = [str(v) for v in form.getlist("editions")][:100]
        countries = [str(v) for v in form.getlist("countries")][:300]
        try:
            newsletter_language = self.vocabulary.language(str(form.get("language", "")))
        except SubscriberError:
            newsletter_language = self.vocabulary.default_language
        # The form hides the editions of the languages not chosen: a tick left there does not count.
        editions = [e for e in editions if self.vocabulary.editions.get(e, newsletter_language) == newsletter_language]
        error = ""
        try:
            email = normalise(email_text)
        except SubscriberError:
            error = words["invalid_email"]
        else:
            if needs_smtputf8(email):
                error = words["email_not_ascii"]
        try:
            profile = self.vocabulary.profile(name, newsletter_language, editions, countries)
        except SubscriberError:
            error = error or words["preferences_invalid"]
        if not error and form.get("consent") != "yes":
            error = words["consent_required"]
        if error:
            offered = await run_in_threadpool(self.choices, lang, newsletter_language, editions, countries)
            return self.render(request, lang, "subscribe.html", "subscribe_title", status=400, error=error,
                               email=email_text, name=name, **offered)
        mail_language = newsletter_language if newsletter_language in self.messages.languages else lang
        allowed = await run_in_threadpool(self._request_subscription, request, email, profile,
                                          self.messages.form_version(lang), mail_language)
        if not allowed:
            return self.notice(request, lang, "too_many_title", words["too_many"], status=429, role="alert")
        return self.notice(request, lang, "check_inbox_title",
                           words["check_inbox"].format(hours=self.config.web.confirm_hours), role="status")

    def _request_subscription(self, request: Request, email: str, profile: Profile, form_version: str,
                              mail_language: str) -> bool:
        """Count the client's attempt and queue the request; False when the client is over its limit."""
        now = utcnow()
        consent = self.consent(request, form_version)
        with self.engine.begin() as conn:
            if not limits.take(conn, limits.SUBSCRIBE_CLIENT, limits.subject_key(self.key, consent.ip or "unknown"),
                               self.config.web.subscribe_rate_per_hour, now):
                return False
            subscribe_requests.record(conn, email, profile, consent, page_language=mail_language,
                                      hours=self.config.web.confirm_hours, now=now)
        return True

    def request_from(self, request: Request) -> tuple[sa.Row | None, str | None]:
        """The subscribe request a confirmation link names, or (None, the message key that says why not)."""
        request_id, reason = self.token_id(request, CONFIRM_PURPOSE)
        if request_id is None:
            return None, reason
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(schema.subscribe_requests)
                               .where(schema.subscribe_requests.c.id == request_id)).one_or_none()
        return row, None if row is not None else "expired_link"

    async def confirm_page(self, request: Request) -> Response:
        row, reason = await run_in_threadpool(self.request_from, request)
        if row is None:
            return self.bad_link(request, reason or "bad_link")
        lang = self.lang(request, row.language)
        words = self.messages.words(lang)
        if row.state == subscribe_requests.CONFIRMED:
            return self.notice(request, lang, "confirmed_title", words["confirmed"], role="status")
        if row.expires_at <= utcnow():
            return self.bad_link(request, "expired_link")
        return self.render(request, lang, "action.html", "confirm_title", message=words["confirm_intro"],
                           action=request.url.path + f"?lang={lang}", button=words["confirm_button"],
                           fields=[], links=[], danger=False)

    def confirmed(self, request: Request, lang: str, subscriber_id: int) -> HTMLResponse:
        words = self.messages.words(lang)
        preferences = tokens.make(self.key, "preferences", subscriber_id)
        return self.notice(request, lang, "confirmed_title", words["confirmed"], role="status",
                           links=[(f"/preferences/{preferences}?lang={lang}", words["preferences_link"])])

    async def confirm(self, request: Request) -> Response:
        posted = await self.posted(request, CONFIRM_PURPOSE)
        if isinstance(posted, Response):
            return posted
        form, request_id = posted
        lang = self.lang(request)
        if not self.csrf_valid(request, form):
            return self.csrf_failed(request, lang)

        def work() -> subscribe_requests.Confirmed | None:
            with self.engine.begin() as conn:
                return subscribe_requests.confirm(conn, request_id, self.consent(request))

        done = await run_in_threadpool(work)
        if done is None:
            words = self.messages.words(lang)
            return self.notice(request, lang, "bad_link_title", words["not_pending"], status=400, role="alert",
                               links=[("/subscribe?lang=" + lang, words["subscribe_title"])])
        return self.confirmed(request, self.lang(request, done.language), done.subscriber_id)

    # -- preferences ------------------------------------------------------------------------------

    def choices(self, lang: str, language: str, editions: list[str], countries: list[str]) -> dict[str, Any]:
        """What `_choices.html` shows: the offer in the page's language and what is ticked."""
        with self.engine.connect() as conn:
            offered = choices.countries(self.config, conn, self.vocabulary, lang, countries)
        return {"choice_languages": choices.languages(self.config, self.messages, self.vocabulary, lang),
                "countries": offered, "chosen_language": language, "chosen_editions": editions,
                "chosen_countries": countries}

    def preferences_view(self, request: Request, row: sa.Row, lang: str, *, status: int = 200, notice: str = "",
                         error: str = "", shown: dict[str, Any] | None = None) -> HTMLResponse:
        subscriber = shown or {"name": row.name, "language": row.language, "editions": list(row.editions),
                               "countries": list(row.countries)}
        unsubscribe = tokens.make(self.key, "unsubscribe", row.id)
        return self.render(
            request, lang, "preferences.html", "preferences_title", status=status, notice=notice, error=error,
            subscriber=subscriber, unsubscribed=row.status != "active" and row.status != "pending",
            action=request.url.path + f"?lang={lang}",
            **self.choices(lang, subscriber["language"], subscriber["editions"], subscriber["countries"]),
            unsubscribe_url=f"/unsubscribe/{unsubscribe}?lang={lang}",
            data_action=request.url.path.rstrip("/") + f"/data?lang={lang}",
        )

    async def preferences_page(self, request: Request) -> Response:
        row, reason = await run_in_threadpool(self.subscriber_from, request, "preferences")
        if reason or row is None:
            return self.bad_link(request, reason or "bad_link")
        lang = self.lang(request, row.language)
        return await run_in_threadpool(self.preferences_view, request, row, lang)

    async def save_preferences(self, request: Request) -> Response:
        posted = await self.posted_change(request, "preferences")
        if isinstance(posted, Response):
            return posted
        form, row, lang = posted
        shown = {"name": str(form.get("name", ""))[:200], "language": str(form.get("language", "")),
                 "editions": [str(v) for v in form.getlist("editions")],
                 "countries": [str(v) for v in form.getlist("countries")]}
        try:
            profile = self.vocabulary.profile(shown["name"], shown["language"], shown["editions"], shown["countries"])
        except SubscriberError:
            # The form only offers known editions and countries: what can go wrong is an edition
            # in another language than the one chosen (or a hand-made request).
            return await run_in_threadpool(self.preferences_view, request, row, lang, status=400,
                                           error=self.messages.words(lang)["preferences_invalid"], shown=shown)

        def work() -> sa.Row | None:
            with self.engine.begin() as conn:
                registry.update_preferences(conn, row.id, profile, self.consent(request))
                return registry.get(conn, row.id)

        updated = await run_in_threadpool(work)
        return await run_in_threadpool(self.preferences_view, request, updated, lang,
                                       notice=self.messages.words(lang)["saved"])

    # -- unsubscribe ------------------------------------------------------------------------------

    async def unsubscribe_page(self, request: Request) -> Response:
        row, reason = await run_in_threadpool(self.subscriber_from, request, "unsubscribe")
        if reason:
            return self.bad_link(request, reason)
        lang = self.lang(request, row.language if row else None)
        words = self.messages.words(lang)
        if row is None or row.status not in ("active", "pending"):
            return self.unsubscribed(request, lang)
        return self.render(request, lang, "action.html", "unsubscribe_title",
                           message=words["unsubscribe_intro"].format(email=row.email),
                           action=request.url.path + f"?lang={lang}", button=words["unsubscribe_button"],
                           fields=[("List-Unsubscribe", "One-Click"), ("via", "page")], links=[], danger=True)

    def unsubscribed(self, request: Request, lang: str) -> HTMLResponse:
        words = self.messages.words(lang)
        return self.notice(request, lang, "unsubscribed_title", words["unsubscribed"], role="status",
                           links=[("/subscribe?lang=" + lang, words["resubscribe_link"])])

    async def unsubscribe(self, request: Request) -> Response:
        """The page's button and RFC 8058 one-click: 200 with a page, never a redirect."""
        posted = await self.posted(request, "unsubscribe")
        if isinstance(posted, Response):
            return posted
        form, subscriber_id = posted
        how = "page" if form.get("via") == "page" else "one-click"

        def work() -> sa.Row | None:
            with self.engine.begin() as conn:
                row = registry.get(conn, subscriber_id)
                if row is not None and row.status in ("active", "pending"):
                    registry.unsubscribe(conn, subscriber_id, self.consent(request), how=how)
                return row

        row = await run_in_threadpool(work)
        return self.unsubscribed(request, self.lang(request, row.language if row else None))

    # -- data -------------------------------------------------------------------------------------

    async def request_data_link(self, request: Request) -> Response:
        """From the preferences page: mail a fresh single-use data link to the subscriber's own address.

        Whoever holds a forwarded digest holds its preferences link, but not the mailbox."""
        posted = await self.posted_change(request, "preferences")
        if isinstance(posted, Response):
            return posted
        _, row, lang = posted
        words = self.messages.words(lang)
        now = utcnow()

        def work() -> str | None:
            with self.engine.begin() as conn:
                address = limits.subject_key(self.key, row.email)
                if not limits.take(conn, limits.DATA_ADDRESS, address, self.config.web.confirmations_per_address, now):
                    return None
                link_id, expires = data_links.create(conn, row.id, now)
            return tokens.make(self.key, DATA_PURPOSE, link_id, int(expires.timestamp()))

        token = await run_in_threadpool(work)
        if token is None:
            return self.notice(request, lang, "too_many_title", words["too_many_data"], status=429, role="alert")
        link = self.url(f"/data/{token}?lang={lang}")
        response = self.notice(request, lang, "data_requested_title", words["data_requested"], role="status")
        response.background = BackgroundTask(self.mailer.send_data_link, row.email, lang, link)
        return response

    def data_link_subscriber(self, request: Request) -> tuple[sa.Row | None, str | None]:
        link_id, reason = self.token_id(request, DATA_PURPOSE)
        if link_id is None:
            return None, reason
        with self.engine.connect() as conn:
            subscriber_id = data_links.open_(conn, link_id)
            row = registry.get(conn, subscriber_id) if subscriber_id is not None else None
        return row, None if row is not None else "data_link_used"

    async def data_page(self, request: Request) -> Response:
        row, reason = await run_in_threadpool(self.data_link_subscriber, request)
        if row is None:
            return self.bad_link(request, reason or "bad_link")
        lang = self.lang(request, row.language)
        words = self.messages.words(lang)
        return self.render(request, lang, "data.html", "data_title", message=words["data_intro"],
                           action=request.url.path + f"?lang={lang}")

    async def data_action(self, request: Request) -> Response:
        """Download or erase, once: the link is spent in the transaction that reads or erases."""
        posted = await self.posted(request, DATA_PURPOSE)
        if isinstance(posted, Response):
            return posted
        form, link_id = posted
        lang = self.lang(request)
        if not self.csrf_valid(request, form):
            return self.csrf_failed(request, lang)
        action = form.get("action")
        if action not in ("download", "erase"):
            return self.bad_form(request, lang)

        def work() -> tuple[dict[str, Any] | None, str | None]:
            with self.engine.begin() as conn:
                subscriber_id = data_links.use(conn, link_id)
                if subscriber_id is None:
                    return None, None
                row = registry.get(conn, subscriber_id)
                if row is None:
                    return None, None
                if action == "download":
                    return registry.data(conn, subscriber_id), row.language
                registry.erase(conn, subscriber_id)
                return {}, row.language

        record, language = await run_in_threadpool(work)
        if record is None:
            return self.bad_link(request, "data_link_used")
        lang = self.lang(request, language)
        if action == "erase":
            return self.notice(request, lang, "erased_title", self.messages.words(lang)["erased"], role="status",
                               links=[("/subscribe?lang=" + lang, self.messages.words(lang)["resubscribe_link"])])
        record["exported_at"] = utcnow().isoformat()
        return JSONResponse(record, headers={"Content-Disposition": 'attachment; filename="my-data.json"',
                                             "Cache-Control": "no-store"})
