"""HTTP email API transports: Postmark, SendGrid and Mailgun, each through its batch endpoint.

One call carries hundreds of recipients, and each still gets a copy of their own: the mailing's
template goes once and every recipient's values (their unsubscribe link, their name) are
substituted per recipient, by us for Postmark's `/email/batch`, by the provider for SendGrid's
personalizations and Mailgun's recipient-variables. Nobody sees another recipient's address.

Whole-call answers are read the same way for every provider: 429 and 5xx are worth retrying
(honouring Retry-After), 401/403 means the token is wrong (stop, the operator must fix it).
Per-recipient answers are read item by item.
"""

from __future__ import annotations

import json
import re
import time
from email.utils import formataddr, parseaddr, parsedate_to_datetime
from typing import Any, Sequence

import requests

from newsletter import __version__
from newsletter.digest.message import MessageTemplate
from newsletter.digest.placeholders import fill, placeholder
from newsletter.errors import TransportError
from newsletter.send.transport import Envelope, Result

USER_AGENT = f"newsletter/{__version__} (+https://github.com/newsletter)"
# Postmark's inactive-recipient code: the address hard-bounced or complained before.
POSTMARK_INACTIVE = 406


def retry_after(response: requests.Response) -> float | None:
    """Seconds to wait, from Retry-After (seconds or HTTP date) or SendGrid's X-RateLimit-Reset."""
    value = response.headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                return None
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            return None
    return None


def _body_message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(data, dict):
        if isinstance(data.get("errors"), list):
            return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in data["errors"])
        if "Message" in data:
            return str(data["Message"])
        if "message" in data:
            return str(data["message"])
    return response.text[:300]


class HTTPProvider:
    """What the three providers share: a session, timeouts, and reading whole-call failures."""

    name = "http"
    personalises = True
    batch_limit = 500
    default_url = ""

    def __init__(self, token: str, *, api_url: str = "", timeout: float = 30.0) -> None:
        self.token = token
        self.api_url = (api_url or self.default_url).rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT

    def _post(self, path: str, **kwargs: Any) -> requests.Response:
        url = self.api_url + path
        try:
            return self.session.post(url, timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            # The provider may have accepted the call before the answer was lost: in doubt.
            raise TransportError(f"{self.name}: no answer from {url} within {self.timeout:g}s") from exc
        except requests.RequestException as exc:
            raise TransportError(f"{self.name}: cannot reach {url}: {exc}") from exc

    def _whole_call_error(self, response: requests.Response) -> TransportError:
        status = response.status_code
        detail = f"{self.name}: HTTP {status} from {response.url}: {_body_message(response)}"
        if status == 429 or status >= 500:
            return TransportError(detail, retry_after=retry_after(response))
        return TransportError(detail, permanent=True)

    def close(self) -> None:
        self.session.close()


class PostmarkTransport(HTTPProvider):
    """POST /email/batch: up to 500 messages; a 200 answer judges each message by its ErrorCode."""

    name = "postmark"
    batch_limit = 500
    default_url = "https://api.postmarkapp.com"

    def __init__(self, token: str, *, message_stream: str = "broadcast", **kwargs: Any) -> None:
        super().__init__(token, **kwargs)
        self.message_stream = message_stream
        self.session.headers.update({"X-Postmark-Server-Token": token, "Accept": "application/json"})

    def _message(self, envelope: Envelope) -> dict[str, Any]:
        template = envelope.template
        assert template is not None, "postmark needs envelopes with a template"
        values = envelope.variables
        headers = {**template.headers, **envelope.headers}
        return {
            "From": template.sender,
            "To": formataddr((envelope.name, envelope.recipient)),
            "Subject": fill(template.subject, values),
            "HtmlBody": fill(template.html, values),
            "TextBody": fill(template.text, values),
            "Headers": [{"Name": k, "Value": fill(v, values)} for k, v in headers.items()],
            "MessageStream": self.message_stream,
            "Metadata": {"delivery": envelope.key},
            # Our own tracking (or none) decides: Postmark must not rewrite links or add a pixel.
            "TrackLinks": "None",
            "TrackOpens": False,
        }

    def send(self, envelopes: Sequence[Envelope]) -> list[Result]:
        response = self._post("/email/batch", json=[self._message(e) for e in envelopes])
        if response.status_code != 200:
            raise self._whole_call_error(response)
        try:
            items = response.json()
        except ValueError as exc:
            raise TransportError(f"postmark: answer is not JSON: {response.text[:200]!r}") from exc
        if not isinstance(items, list) or len(items) != len(envelopes):
            raise TransportError(f"postmark: expected {len(envelopes)} results, got {str(items)[:200]}")
        results = []
        for envelope, item in zip(envelopes, items):
            code = item.get("ErrorCode", 0)
            if code == 0:
                results.append(Result(envelope.key, envelope.recipient, provider_message_id=item.get("MessageID")))
                continue
            error = TransportError(f"postmark: {envelope.recipient} rejected: ErrorCode {code}: {item.get('Message', '')}",
                                   permanent=True)
            results.append(Result(envelope.key, envelope.recipient, error, hard_bounce=code == POSTMARK_INACTIVE))
        return results


class SendGridTransport(HTTPProvider):
    """POST /v3/mail/send: one content with substitutions and up to 1000 personalizations."""

    name = "sendgrid"
    batch_limit = 1000
    default_url = "https://api.sendgrid.com"
    _FIELD = re.compile(r"^personalizations\.(\d+)\b")

    def __init__(self, token: str, **kwargs: Any) -> None:
        super().__init__(token, **kwargs)
        self.session.headers["Authorization"] = f"Bearer {token}"

    @staticmethod
    def _address(value: str) -> dict[str, str]:
        name, email = parseaddr(value)
        return {"email": email, "name": name} if name else {"email": email}

    def _payload(self, template: MessageTemplate, envelopes: Sequence[Envelope]) -> dict[str, Any]:
        personalizations = []
        for e in envelopes:
            to = {"email": e.recipient, "name": e.name} if e.name else {"email": e.recipient}
            p: dict[str, Any] = {"to": [to], "custom_args": {"delivery": e.key}}
            if e.variables:
                # SendGrid finds and replaces literal strings: our placeholders as they stand.
                p["substitutions"] = {str(placeholder(k)): v for k, v in e.variables.items()}
            if e.headers:
                p["headers"] = dict(e.headers)
            personalizations.append(p)
        payload: dict[str, Any] = {
            "personalizations": personalizations,
            "from": self._address(template.sender),
            "subject": template.subject,
            "content": [{"type": "text/plain", "value": template.text}, {"type": "text/html", "value": template.html}],
            # Our own tracking (or none) decides: SendGrid must not rewrite links or add a pixel.
            "tracking_settings": {"click_tracking": {"enable": False, "enable_text": False},
                                  "open_tracking": {"enable": False}},
        }
        if template.headers:
            payload["headers"] = dict(template.headers)
        return payload

    def _refused_items(self, response: requests.Response) -> dict[int, str]:
        """400 answers name the bad personalization by its index in `field`."""
        try:
            errors = response.json().get("errors", [])
        except (ValueError, AttributeError):
            return {}
        refused: dict[int, str] = {}
        for error in errors:
            match = self._FIELD.match(str(error.get("field") or ""))
            if match:
                refused[int(match.group(1))] = str(error.get("message", ""))
        return refused

    def send(self, envelopes: Sequence[Envelope]) -> list[Result]:
        template = envelopes[0].template
        assert template is not None, "sendgrid needs envelopes with a template"
        response = self._post("/v3/mail/send", json=self._payload(template, envelopes))
        if response.status_code in (200, 202):
            message_id = response.headers.get("X-Message-Id")
            return [Result(e.key, e.recipient, provider_message_id=message_id) for e in envelopes]
        refused = self._refused_items(response) if response.status_code == 400 else {}
        if not refused:
            raise self._whole_call_error(response)
        # SendGrid refuses the whole call for one bad recipient: fail that one, resend the others.
        results = []
        for i, e in enumerate(envelopes):
            if i in refused:
                results.append(Result(e.key, e.recipient, TransportError(
                    f"sendgrid: {e.recipient} refused: {refused[i]}", permanent=True)))
            else:
                results.append(Result(e.key, e.recipient, TransportError(
                    "sendgrid: call refused because of another recipient; resending", retry_after=0.0)))
        return results


class MailgunTransport(HTTPProvider):
    """POST /v3/{domain}/messages with up to 1000 `to` and recipient-variables."""

    name = "mailgun"
    batch_limit = 1000
    default_url = "https://api.mailgun.net"

    def __init__(self, token: str, *, domain: str, **kwargs: Any) -> None:
        super().__init__(token, **kwargs)
        self.domain = domain
        self.session.auth = ("api", token)

    @staticmethod
    def _fields(template: MessageTemplate, envelopes: Sequence[Envelope]) -> list[tuple[str, str]]:
        # Our placeholders become Mailgun's %recipient.vN%; per-recipient headers %recipient.hN%.
        names = {p: f"v{i}" for i, p in enumerate(sorted(envelopes[0].variables))}
        rename = {p: f"%recipient.{n}%" for p, n in names.items()}
        header_names = sorted({h for e in envelopes for h in e.headers})
        recipient_vars: dict[str, dict[str, str]] = {}
        for e in envelopes:
            values = {names[p]: v for p, v in e.variables.items() if p in names}
            values.update({f"h{i}": e.headers.get(h, "") for i, h in enumerate(header_names)})
            recipient_vars[e.recipient] = values
        fields = [("from", template.sender)]
        fields += [("to", formataddr((e.name, e.recipient))) for e in envelopes]
        fields += [
            ("subject", fill(template.subject, rename)),
            ("text", fill(template.text, rename)),
            ("html", fill(template.html, rename)),
            ("recipient-variables", json.dumps(recipient_vars, ensure_ascii=False)),
            # Our own tracking (or none) decides: Mailgun must not rewrite links or add a pixel.
            ("o:tracking-clicks", "no"),
            ("o:tracking-opens", "no"),
        ]
        fields += [(f"h:{k}", fill(v, rename)) for k, v in template.headers.items()]
        fields += [(f"h:{h}", f"%recipient.h{i}%") for i, h in enumerate(header_names)]
        return fields

    def send(self, envelopes: Sequence[Envelope]) -> list[Result]:
        template = envelopes[0].template
        assert template is not None, "mailgun needs envelopes with a template"
        multipart = [(k, (None, v.encode("utf-8"))) for k, v in self._fields(template, envelopes)]
        response = self._post(f"/v3/{self.domain}/messages", files=multipart)
        if response.status_code != 200:
            raise self._whole_call_error(response)
        try:
            message_id = response.json().get("id")
        except ValueError:
            message_id = None
        return [Result(e.key, e.recipient, provider_message_id=message_id) for e in envelopes]

