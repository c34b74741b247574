"""A local HTTP server speaking Postmark's, SendGrid's and Mailgun's batch APIs closely.

Each answers as the provider documents it: Postmark 200 with one result per message and a
per-item ErrorCode (406 for an inactive recipient), 401/422 for the whole call; SendGrid 202
with an X-Message-Id, or 400 naming the bad personalization in `field`; Mailgun 200
"Queued. Thank you.", 401 "Forbidden". Scripted replies (429 with Retry-After, 5xx) come
first when given. Every copy a recipient would get is kept, after the provider's substitution.
"""

from __future__ import annotations

import base64
import email
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field

from tests.support.httpserver import FixtureServer, Reply, Request

TOKEN = "test-api-token"
DOMAIN = "mg.example.org"


@dataclass
class Copy:
    """What one recipient receives."""

    to: str
    subject: str
    html: str
    text: str
    headers: dict[str, str]


@dataclass
class ProviderStub:
    server: FixtureServer
    inactive: set[str] = field(default_factory=set)  # Postmark 406
    invalid: set[str] = field(default_factory=set)  # SendGrid 400 / Postmark 300
    script: list[Reply] = field(default_factory=list)  # answered first, in order
    copies: list[Copy] = field(default_factory=list)
    calls: list[tuple[float, str, int]] = field(default_factory=list)  # (time, path, recipients)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.server.routes["/email/batch"] = self.postmark
        self.server.routes["/v3/mail/send"] = self.sendgrid
        self.server.routes[f"/v3/{DOMAIN}/messages"] = self.mailgun

    @property
    def url(self) -> str:
        return self.server.url

    def _scripted(self, path: str, n: int) -> Reply | None:
        with self.lock:
            self.calls.append((time.monotonic(), path, n))
            return self.script.pop(0) if self.script else None

    def recipients(self) -> list[str]:
        with self.lock:
            return [c.to for c in self.copies]

    # Postmark: https://postmarkapp.com/developer/api/email-api#send-batch-emails
    def postmark(self, req: Request) -> Reply:
        if req.headers.get("x-postmark-server-token") != TOKEN:
            return _json({"ErrorCode": 10, "Message": "The Server Token you provided in the X-Postmark-Server-Token "
                                                      "request header was invalid."}, 401)
        messages = json.loads(req.body)
        scripted = self._scripted(req.path, len(messages))
        if scripted:
            return scripted
        if len(messages) > 500:
            return _json({"ErrorCode": 300, "Message": "Batch too large: at most 500 messages."}, 422)
        results = []
        for msg in messages:
            to = email.utils.parseaddr(msg["To"])[1]
            if to in self.inactive:
                results.append({"ErrorCode": 406, "Message": "You tried to send to recipient(s) that have been "
                                "marked as inactive. Found inactive addresses: " + to + "."})
                continue
            if to in self.invalid:
                results.append({"ErrorCode": 300, "Message": f"Invalid 'To' address: '{to}'."})
                continue
            headers = {h["Name"]: h["Value"] for h in msg.get("Headers", [])}
            with self.lock:
                self.copies.append(Copy(msg["To"], msg["Subject"], msg["HtmlBody"], msg["TextBody"], headers))
            results.append({"ErrorCode": 0, "Message": "OK", "MessageID": str(uuid.uuid4()),
                            "SubmittedAt": "2026-03-02T12:00:00.0000000Z", "To": msg["To"]})
        return _json(results, 200)

    # SendGrid: https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send
    def sendgrid(self, req: Request) -> Reply:
        if req.headers.get("authorization") != f"Bearer {TOKEN}":
            return _json({"errors": [{"message": "The provided authorization grant is invalid, expired, or revoked",
                                      "field": None, "help": None}]}, 401)
        payload = json.loads(req.body)
        personalizations = payload["personalizations"]
        scripted = self._scripted(req.path, len(personalizations))
        if scripted:
            return scripted
        if len(personalizations) > 1000:
            return _json({"errors": [{"message": "The personalizations field must have between 1 and 1000 items.",
                                      "field": "personalizations", "help": None}]}, 400)
        errors = [
            {"message": "Does not contain a valid address.", "field": f"personalizations.{i}.to.0.email",
             "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"}
            for i, p in enumerate(personalizations) if p["to"][0]["email"] in self.invalid
        ]
        if errors:
            return _json({"errors": errors}, 400)
        content = {c["type"]: c["value"] for c in payload["content"]}
        for p in personalizations:
            subs = p.get("substitutions", {})
            to = p["to"][0]
            with self.lock:
                self.copies.append(Copy(
                    email.utils.formataddr((to.get("name", ""), to["email"])), _replace(payload["subject"], subs),
                    _replace(content["text/html"], subs), _replace(content["text/plain"], subs),
                    {**payload.get("headers", {}), **{k: _replace(v, subs) for k, v in p.get("headers", {}).items()}},
                ))
        return Reply("", 202, headers={"X-Message-Id": uuid.uuid4().hex[:22]}, content_type="text/plain")

    # Mailgun: https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/batch-sending
    def mailgun(self, req: Request) -> Reply:
        expected = "Basic " + base64.b64encode(f"api:{TOKEN}".encode()).decode()
        if req.headers.get("authorization") != expected:
            return Reply("Forbidden", 401, content_type="text/plain")
        form = email.message_from_bytes(b"Content-Type: " + req.headers["content-type"].encode() + b"\r\n\r\n" + req.body)
        fields: list[tuple[str, str]] = []
        for part in form.get_payload():
            name = part.get_param("name", header="content-disposition")
            fields.append((name, part.get_payload(decode=True).decode("utf-8")))
        tos = [v for k, v in fields if k == "to"]
        scripted = self._scripted(req.path, len(tos))
        if scripted:
            return scripted
        if len(tos) > 1000:
            return _json({"message": "Too many recipients: at most 1000 with recipient-variables"}, 400)
        one = {k: v for k, v in fields}
        if "recipient-variables" not in one:
            return _json({"message": "Batch sending without recipient-variables shows every address to all"}, 400)
        variables = json.loads(one["recipient-variables"])
        for to in tos:
            values = variables[email.utils.parseaddr(to)[1]]

            def fill(text: str) -> str:
                return re.sub(r"%recipient\.([A-Za-z0-9_]+)%", lambda m: values[m.group(1)], text)

            headers = {k[2:]: fill(v) for k, v in fields if k.startswith("h:")}
            with self.lock:
                self.copies.append(Copy(to, fill(one["subject"]), fill(one["html"]), fill(one["text"]), headers))
        return _json({"id": f"<{uuid.uuid4().hex}@{DOMAIN}>", "message": "Queued. Thank you."}, 200)


def _json(data: object, status: int) -> Reply:
    return Reply(json.dumps(data), status, content_type="application/json")


def _replace(text: str, substitutions: dict[str, str]) -> str:
    for key, value in substitutions.items():
        text = text.replace(key, value)
    return text
