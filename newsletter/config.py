"""The operator's configuration: one TOML file, validated before anything runs.

Every section is a frozen dataclass. Loading checks each key's type and value and
stops with a `ConfigError` naming the key, the value found and what was expected,
so a typo never turns into a half-run job. Secrets are never read from the file:
the file only names the environment variables that hold them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import typing
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from newsletter.errors import ConfigError

DEFAULT_CONFIG = "config.toml"
SOURCE_KINDS = ("wordpress", "feed", "pages")
TRANSPORT_KINDS = ("outbox", "smtp", "postmark", "sendgrid", "mailgun")


def _url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "an absolute http(s) URL"
    return None


def _one_of(*choices: str):
    def check(value: str) -> str | None:
        return None if value in choices else "one of " + ", ".join(repr(c) for c in choices)

    return check


def _positive(value: int | float) -> str | None:
    return None if value > 0 else "a number greater than 0"


def _non_negative(value: int | float) -> str | None:
    return None if value >= 0 else "a number of 0 or more"


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "a TCP port from 0 to 65535"


def _timezone(value: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "an IANA time zone such as 'America/Bogota'"
    return None


def _cron(value: str) -> str | None:
    from newsletter.slots import cron_trigger

    try:
        cron_trigger(value)
    except ValueError:
        return "a five-field cron expression such as '0 7 * * *'"
    return None


def _language(value: str) -> str | None:
    return None if value.isalpha() and 2 <= len(value) <= 3 and value.islower() else "a language code such as 'en' or 'es'"


def _name(value: str) -> str | None:
    ok = value and all(c.isalnum() or c in "-_" for c in value) and value.isascii()
    return None if ok else "a name of letters, digits, '-' and '_'"


def _address(value: str) -> str | None:
    return None if mailbox(value) else "an email address such as 'Name <news@example.org>'"


def _language_urls(value: dict[str, str]) -> str | None:
    for language, url in value.items():
        if _language(language) or _url(url):
            return "a table of language codes to absolute http(s) URLs, such as {es = 'https://...'}"
    return None


def check(fn) -> dict[str, Any]:
    """Field metadata: a validator returning what was expected, or None when the value is fine."""
    return {"check": fn}


@dataclass(frozen=True)
class Publication:
    name: str
    site_url: str = field(metadata=check(_url))
    public_url: str = field(metadata=check(_url))
    sender: str = field(metadata=check(_address))
    postal_address: str = ""
    donate_url: str = field(default="", metadata=check(lambda v: v and _url(v)))
    # Campaign parameters appended to donate links in digests, e.g. {utm_source = "newsletter"}.
    donate_params: dict[str, str] = field(default_factory=dict)
    licence: str = "CC BY-NC 4.0"
    licence_url: str = field(default="https://creativecommons.org/licenses/by-nc/4.0/", metadata=check(_url))
    # The licence in a reader's language, by edition language, e.g. {es = ".../legalcode.es"};
    # languages not listed get `licence_url`.
    licence_urls: dict[str, str] = field(default_factory=dict, metadata=check(_language_urls))
    reply_to: str = field(default="", metadata=check(lambda v: v and _address(v)))
    logo_url: str = field(default="", metadata=check(lambda v: v and _url(v)))
    # Mailbox that receives mailto: unsubscribe requests (List-Unsubscribe).
    unsubscribe_mailto: str = ""
    # Feedback-ID sender tag (Gmail's feedback loop), e.g. "insightcrime".
    feedback_id_sender: str = ""

    def licence_url_for(self, language: str) -> str:
        return self.licence_urls.get(language, self.licence_url)


@dataclass(frozen=True)
class StoreConfig:
    url: str = "sqlite:///var/newsletter.sqlite3"


@dataclass(frozen=True)
class SourceConfig:
    name: str = field(metadata=check(_name))
    kind: str = field(metadata=check(_one_of(*SOURCE_KINDS)))
    url: str = field(metadata=check(_url))
    language: str = field(metadata=check(_language))
    # wordpress: only posts in these category / tag slugs or names (empty: all posts).
    categories: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    # pages: the listing page that links to article pages, and how to find those links.
    listing_url: str = field(default="", metadata=check(lambda v: v and _url(v)))
    article_link_xpath: str = ""
    # Heading words that start the analysis section (matched in any case and spacing).
    analysis_headings: list[str] = field(default_factory=list)
    timeout_seconds: float = field(default=20.0, metadata=check(_positive))
    max_bytes: int = field(default=10_000_000, metadata=check(_positive))
    retries: int = field(default=3, metadata=check(_non_negative))
    per_page: int = field(default=50, metadata=check(lambda v: None if 1 <= v <= 100 else "1 to 100"))
    max_pages: int = field(default=20, metadata=check(_positive))
    max_items: int = field(default=200, metadata=check(_positive))
    # wordpress: HTTP Basic auth with a WordPress application password, for a REST API that
    # requires login. The password comes from the environment variable named here.
    auth_user: str = ""
    auth_password_env: str = ""

    def auth(self) -> tuple[str, str] | None:
        """(user, application password) for the REST API, or None when the source has no login."""
        if not self.auth_user:
            return None
        return self.auth_user, require_secret(
            self.auth_password_env, f"holds the WordPress application password of {self.auth_user!r} "
                                    f"(sources.{self.name}.auth_password_env)")


@dataclass(frozen=True)
class CollectConfig:
    interval_minutes: int = field(default=30, metadata=check(_positive))
    user_agent: str = ""
    # Extra country names, by canonical English slug: {"colombia" = ["Colombie"]}.
    countries: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class FeedConfig:
    output_dir: str = "public/feeds"
    entries: int = field(default=50, metadata=check(_positive))
    archive_size: int = field(default=100, metadata=check(_positive))
    websub_hub: str = field(default="", metadata=check(lambda v: v and _url(v)))
    icon_url: str = field(default="", metadata=check(lambda v: v and _url(v)))


@dataclass(frozen=True)
class EditionConfig:
    name: str = field(metadata=check(_name))
    language: str = field(metadata=check(_language))
    schedule: str = field(default="0 7 * * *", metadata=check(_cron))
    timezone: str = field(default="UTC", metadata=check(_timezone))
    title: str = ""
    # Jinja2 template over `count`, `countries`, `date`, `edition`, `publication`.
    subject: str = ""
    max_items: int = field(default=15, metadata=check(_positive))
    min_items: int = field(default=1, metadata=check(_positive))
    countries: list[str] = field(default_factory=list)
    excerpt_chars: int = field(default=600, metadata=check(_positive))
    # How far back the first mailing of a new edition looks, so it does not mail the archive.
    lookback_hours: int = field(default=24, metadata=check(_positive))
    grace_minutes: int = field(default=60, metadata=check(_positive))


@dataclass(frozen=True)
class TransportConfig:
    kind: str = field(default="outbox", metadata=check(_one_of(*TRANSPORT_KINDS)))
    outbox_dir: str = "outbox"
    host: str = "127.0.0.1"
    port: int = field(default=25, metadata=check(_port))
    starttls: bool = False
    ssl: bool = False
    username: str = ""
    password_env: str = ""
    api_token_env: str = ""
    api_url: str = field(default="", metadata=check(lambda v: v and _url(v)))
    # Mailgun sends per domain; Postmark per message stream.
    domain: str = ""
    message_stream: str = "broadcast"
    connections: int = field(default=4, metadata=check(_positive))
    rate_per_second: float = field(default=0.0, metadata=check(_non_negative))
    burst: int = field(default=50, metadata=check(_positive))
    batch_size: int = field(default=500, metadata=check(_positive))
    timeout_seconds: float = field(default=30.0, metadata=check(_positive))
    retries: int = field(default=5, metadata=check(_non_negative))
    # First wait before retrying a delivery (SMTP 4xx, HTTP 429/5xx without Retry-After); doubles each time.
    retry_base_seconds: float = field(default=30.0, metadata=check(_positive))
    # Pause a mailing when this share of finished deliveries failed (after `failure_min` of them).
    failure_threshold: float = field(default=0.2, metadata=check(_positive))
    failure_min: int = field(default=50, metadata=check(_positive))
    soft_bounce_limit: int = field(default=3, metadata=check(_positive))
    # How long a send worker's claims outlive its last heartbeat: a resume after a crash waits at most this.
    claim_lease_seconds: float = field(default=60.0, metadata=check(lambda v: None if v >= 1 else "1 or more seconds"))
    # smtp: the name given in EHLO (default: the domain of [publication].sender, never an IP literal).
    ehlo_name: str = ""
    # smtp: a PEM bundle of CA certificates trusted in addition to the system's (a private relay's CA).
    ca_file: str = ""
    # smtp: a client certificate (PEM) and its key, for relays that authenticate senders by certificate.
    client_cert: str = ""
    client_key: str = ""


@dataclass(frozen=True)
class DkimConfig:
    selector: str = ""
    domain: str = ""
    private_key_path: str = ""
    # An optional second signature, Ed25519-SHA256 (RFC 8463), under its own selector.
    ed25519_selector: str = ""
    ed25519_private_key_path: str = ""


@dataclass(frozen=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata=check(_port))
    operator_token_env: str = "NEWSLETTER_OPERATOR_TOKEN"
    subscribe_rate_per_hour: int = field(default=20, metadata=check(_positive))
    confirm_hours: int = field(default=48, metadata=check(_positive))
    # Confirmation emails one address may receive in any 24 hours, whoever asks for them.
    confirmations_per_address: int = field(default=3, metadata=check(_positive))
    # Proxies (IPs or CIDR networks) whose X-Forwarded-For / X-Forwarded-Proto are believed.
    trusted_proxies: list[str] = field(default_factory=list, metadata=check(lambda v: _networks(v)))


@dataclass(frozen=True)
class TrackingConfig:
    # Links in mailings go through `/r/{token}` and are counted per mailing, brief and link kind.
    clicks: bool = True
    # A 1x1 image per mailing; off by default: opens are unreliable (see README, *Tracking*).
    opens: bool = False


@dataclass(frozen=True)
class Config:
    path: Path
    publication: Publication
    store: StoreConfig
    sources: list[SourceConfig]
    collect: CollectConfig
    feed: FeedConfig
    editions: list[EditionConfig]
    transport: TransportConfig
    dkim: DkimConfig
    web: WebConfig
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    webhooks: WebhooksConfig = field(default_factory=lambda: WebhooksConfig())
    bounces: BouncesConfig | None = None

    @property
    def root(self) -> Path:
        """Folder that relative paths in the config are relative to."""
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        return (self.root / relative).resolve()

    def edition(self, name: str) -> EditionConfig:
        for edition in self.editions:
            if edition.name == name:
                return edition
        known = ", ".join(e.name for e in self.editions) or "none"
        raise ConfigError(f"editions: no edition named {name!r} (configured: {known})")

    def secret_key(self) -> bytes:
        """The HMAC key for tokens, from NEWSLETTER_SECRET_KEY (at least 32 characters)."""
        value = require_secret(SECRET_KEY_ENV, SECRET_KEY_PURPOSE)
        strong_secret(SECRET_KEY_ENV, value, SECRET_KEY_PURPOSE)
        return value.encode()

    @property
    def store_url(self) -> str:
        """The store URL with a relative SQLite path resolved against the config's folder."""
        url = self.store.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
            return prefix + str(self.resolve(url[len(prefix):]))
        return url


def require_secret(env_name: str, purpose: str) -> str:
    """Read a secret from the environment or stop with the variable's name and purpose."""
    value = os.environ.get(env_name, "")
    if not value:
        raise ConfigError(f"environment variable {env_name} is not set; it {purpose}")
    return value


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if origin is list:
        return "a list of " + _describe(typing.get_args(tp)[0]).removeprefix("a ") + "s"
    if origin is dict:
        return "a table"
    return str(tp)


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check `value` against the annotation `tp`, returning it (ints widen to floats)."""
    origin = typing.get_origin(tp)
    ok: bool
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif origin is list:
        (item_tp,) = typing.get_args(tp)
        ok = isinstance(value, list)
        if ok:
            return [_coerce(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value)]
    elif origin is dict:
        _, item_tp = typing.get_args(tp)
        ok = isinstance(value, dict)
        if ok:
            return {str(k): _coerce(f"{key}.{k}", v, item_tp) for k, v in value.items()}
    else:
        raise TypeError(f"unsupported config type {tp}")
    if not ok:
        raise ConfigError(f"{key} = {value!r}: expected {_describe(tp)}")
    return value


def _build(cls: type, section: str, data: Any) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{section} = {data!r}: expected a table")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"{section}.{unknown[0]}: unknown key; expected one of {', '.join(sorted(known))}"
        )
    values: dict[str, Any] = {}
    for name, f in known.items():
        key = f"{section}.{name}"
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key}: missing; expected {_describe(hints[name])}")
            continue
        value = _coerce(key, data[name], hints[name])
        checker = f.metadata.get("check")
        expected = checker(value) if checker else None
        if expected:
            raise ConfigError(f"{key} = {value!r}: expected {expected}")
        values[name] = value
    return cls(**values)


def _unique(section: str, items: list[Any]) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.name in seen:
            raise ConfigError(f"{section}[{i}].name = {item.name!r}: expected a name not used above")
        seen.add(item.name)


def _check_auth(key: str, source: SourceConfig) -> None:
    """A login is for the REST API, needs both names, and its password only travels over HTTPS
    (or to this machine, where WordPress's own test sites live)."""
    if not (source.auth_user or source.auth_password_env):
        return
    if source.kind != "wordpress":
        raise ConfigError(f"{key}.auth_user = {source.auth_user!r}: expected only on a source of kind 'wordpress'")
    if not source.auth_user:
        raise ConfigError(f"{key}.auth_user: missing; expected the WordPress user whose application password "
                          f"{source.auth_password_env} holds")
    if not source.auth_password_env:
        raise ConfigError(f"{key}.auth_password_env: missing; expected the name of the environment variable "
                          f"holding the application password of {source.auth_user!r}")
    parts = urlsplit(source.url)
    if parts.scheme != "https" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(f"{key}.url = {source.url!r}: expected an https:// URL, since auth_user sends a "
                          "password with every request")


def parse(data: Mapping[str, Any], path: Path) -> Config:
    """Build a validated Config from parsed TOML (pure: no I/O)."""
    sections = {
        "publication", "store", "sources", "collect", "feed", "editions", "transport", "dkim", "web", "webhooks",
        "tracking",
        "bounces",
    }
    unknown = sorted(set(data) - sections)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section; expected one of {', '.join(sorted(sections))}")
    if "publication" not in data:
        raise ConfigError("publication: missing; expected a [publication] table with name, site_url, public_url, sender")
    check_env_names(data)
    refuse_shared_webhook_secret(data)

    def table_list(name: str, cls: type) -> list[Any]:
        raw = data.get(name, [])
        if not isinstance(raw, list):
            raise ConfigError(f"{name} = {raw!r}: expected an array of tables ([[{name}]])")
        return [_build(cls, f"{name}[{i}]", item) for i, item in enumerate(raw)]

    sources = table_list("sources", SourceConfig)
    editions = table_list("editions", EditionConfig)
    _unique("sources", sources)
    _unique("editions", editions)
    for i, source in enumerate(sources):
        if source.kind == "pages" and not source.listing_url:
            raise ConfigError(f"sources[{i}].listing_url: missing; expected the URL of the page listing the articles")
        _check_auth(f"sources[{i}]", source)
    store = _build(StoreConfig, "store", data.get("store", {}))
    if not store.url.startswith(("sqlite://", "postgresql")):
        raise ConfigError(f"store.url = {store.url!r}: expected sqlite:///PATH or postgresql+psycopg://USER@HOST/DB")
    return Config(
        path=path,
        publication=_build(Publication, "publication", data["publication"]),
        store=store,
        sources=sources,
        collect=_build(CollectConfig, "collect", data.get("collect", {})),
        feed=_build(FeedConfig, "feed", data.get("feed", {})),
        editions=editions,
        transport=_build(TransportConfig, "transport", data.get("transport", {})),
        dkim=_build(DkimConfig, "dkim", data.get("dkim", {})),
        web=_build(WebConfig, "web", data.get("web", {})),
        tracking=_build(TrackingConfig, "tracking", data.get("tracking", {})),
        webhooks=_webhooks(data.get("webhooks", {})),
        bounces=_bounces(data.get("bounces")),
    )


# Cross-field rules and what the environment and files must hold: checked by `load`, so no
# command meets them half-way through its work (a send worker, a rendered mailing).

API_KINDS = ("postmark", "sendgrid", "mailgun")


def mailbox(value: str) -> tuple[str, str] | None:
    """(display name, address) of one mailbox such as 'Name <news@example.org>', or None when
    it is not exactly one valid address (email-validator, without DNS look-ups)."""
    from email.errors import HeaderParseError
    from email.headerregistry import HeaderRegistry

    from email_validator import EmailNotValidError, validate_email

    if not value or "\n" in value or "\r" in value:
        return None
    try:
        header = HeaderRegistry()("To", value)
    except (HeaderParseError, IndexError, ValueError):
        return None
    if header.defects or len(header.addresses) != 1:
        return None
    address = header.addresses[0]
    try:
        validate_email(address.addr_spec, check_deliverability=False)
    except EmailNotValidError:
        return None
    return address.display_name, address.addr_spec


def sender_domain(config: "Config") -> str:
    """The domain of [publication].sender's address (validated at load)."""
    found = mailbox(config.publication.sender)
    return found[1].rpartition("@")[2] if found else ""


def _hostname(value: str) -> str | None:
    import ipaddress

    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        pass
    else:
        return "a host name such as 'mail.example.org', not an IP literal (relays refuse or score those)"
    labels = value.split(".")
    ok = len(value) <= 253 and len(labels) >= 2 and all(
        label and len(label) <= 63 and label.isascii() and all(c.isalnum() or c == "-" for c in label)
        and not label.startswith("-") and not label.endswith("-") for label in labels)
    return None if ok else "a fully qualified host name such as 'mail.example.org'"


def transport_secret(t: "TransportConfig") -> str:
    """The SMTP password or API token the transport uses ('' when it needs none); present, since `load` checked."""
    if t.kind == "smtp":
        return os.environ.get(t.password_env, "") if t.username else ""
    if t.kind in API_KINDS:
        return os.environ.get(t.api_token_env, "")
    return ""


def check_addresses(publication: Publication) -> None:
    for key in ("sender", "reply_to", "unsubscribe_mailto"):
        value = getattr(publication, key)
        if (value or key == "sender") and mailbox(value) is None:
            raise ConfigError(f"publication.{key} = {value!r}: expected one valid email address such as "
                              f"'Name <news@example.org>' or 'news@example.org'")


def check_transport(config: "Config", environ: Mapping[str, str]) -> None:
    """TLS modes, credentials present in the environment, provider fields, EHLO name, CA and client certificates."""
    t = config.transport
    if t.kind == "smtp":
        if t.starttls and t.ssl:
            raise ConfigError("transport.starttls and transport.ssl are both true: expected one of them "
                              "(starttls upgrades a plain connection, ssl is TLS from the start)")
        if t.username and not t.password_env:
            raise ConfigError(f"transport.password_env: missing; expected the name of the environment "
                              f"variable holding the SMTP password of {t.username!r}")
        if t.password_env and not t.username:
            raise ConfigError(f"transport.username: missing; expected the SMTP login that the password in "
                              f"{t.password_env} belongs to")
        if t.username and not environ.get(t.password_env):
            raise ConfigError(f"transport.password_env = {t.password_env!r}: the environment variable "
                              f"{t.password_env} is not set; expected it to hold the SMTP password of {t.username!r}")
        if t.ehlo_name and (expected := _hostname(t.ehlo_name)):
            raise ConfigError(f"transport.ehlo_name = {t.ehlo_name!r}: expected {expected}")
        if not t.ehlo_name and (expected := _hostname(sender_domain(config))):
            raise ConfigError(f"transport.ehlo_name: missing, and the sender's domain {sender_domain(config)!r} "
                              f"cannot stand in for it; expected {expected}")
        _check_tls_files(config)
    elif t.kind in API_KINDS:
        if not t.api_token_env:
            raise ConfigError(f"transport.api_token_env: missing; expected the name of the environment variable "
                              f"holding the {t.kind} API token")
        if not environ.get(t.api_token_env):
            raise ConfigError(f"transport.api_token_env = {t.api_token_env!r}: the environment variable "
                              f"{t.api_token_env} is not set; expected it to hold the {t.kind} API token")
        if t.kind == "mailgun" and not t.domain:
            raise ConfigError("transport.domain: missing; expected the Mailgun sending domain, e.g. 'mg.example.org'")


def _check_tls_files(config: "Config") -> None:
    import ssl

    from newsletter.send.smtp import tls_context

    t = config.transport
    tls_keys = [k for k in ("ca_file", "client_cert", "client_key") if getattr(t, k)]
    if tls_keys and not (t.starttls or t.ssl):
        raise ConfigError(f"transport.{tls_keys[0]} = {getattr(t, tls_keys[0])!r}: set, but neither transport.starttls "
                          f"nor transport.ssl is true; expected one of them, or no TLS files")
    if t.client_key and not t.client_cert:
        raise ConfigError(f"transport.client_cert: missing; expected the PEM certificate that goes with "
                          f"transport.client_key = {t.client_key!r}")
    for key in tls_keys:
        path = config.resolve(getattr(t, key))
        if not path.is_file():
            raise ConfigError(f"transport.{key} = {getattr(t, key)!r}: cannot read {path}; expected a PEM file")
    ca = config.resolve(t.ca_file) if t.ca_file else None
    try:
        tls_context(ca, None)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(f"transport.ca_file = {t.ca_file!r}: not a PEM bundle of CA certificates ({exc})") from exc
    if t.client_cert:
        key = config.resolve(t.client_key) if t.client_key else None
        try:
            tls_context(None, (config.resolve(t.client_cert), key))
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(f"transport.client_cert = {t.client_cert!r}, transport.client_key = {t.client_key!r}: "
                              f"expected a PEM certificate and its unencrypted private key ({exc})") from exc


def check_dkim(config: "Config", *, probe: bool = True) -> None:
    """All three keys or none; each key readable, a private key in PEM of its algorithm (RSA of 1024
    bits or more; Ed25519 for the optional second signature). Without `probe` the keys are only
    read, not loaded: for a process that never signs and whose keys were just proved."""
    settings = config.dkim
    given = [k for k in ("selector", "domain", "private_key_path") if getattr(settings, k)]
    if not given:
        if settings.ed25519_selector or settings.ed25519_private_key_path:
            raise ConfigError("dkim.ed25519_selector: an Ed25519 signature is a second signature; expected "
                              "dkim.selector, dkim.domain and dkim.private_key_path (RSA) set too")
        return
    missing = [k for k in ("selector", "domain", "private_key_path") if not getattr(settings, k)]
    if missing:
        raise ConfigError(f"dkim.{missing[0]}: missing; expected dkim.selector, dkim.domain and "
                          f"dkim.private_key_path all set to sign messages, or none of them")
    if expected := _hostname(settings.domain):
        raise ConfigError(f"dkim.domain = {settings.domain!r}: expected {expected}")
    if bool(settings.ed25519_selector) != bool(settings.ed25519_private_key_path):
        raise ConfigError("dkim.ed25519_selector and dkim.ed25519_private_key_path: expected both set (a second, "
                          "Ed25519 signature) or neither")
    # Loading a key loads cryptography (9 MB resident), which only a process that signs needs.
    from newsletter.digest.dkim import ED25519_SHA256, RSA_SHA256, DkimKeyError, load_key

    keys = [("private_key_path", RSA_SHA256)]
    if settings.ed25519_private_key_path:
        keys.append(("ed25519_private_key_path", ED25519_SHA256))
    for name, algorithm in keys:
        relative = getattr(settings, name)
        path = config.resolve(relative)
        try:
            pem = path.read_bytes()
            if probe:
                load_key(pem, algorithm, "probe")
        except OSError as exc:
            raise ConfigError(f"dkim.{name} = {relative!r}: cannot read {path}: {exc.strerror}") from exc
        except DkimKeyError as exc:
            raise ConfigError(f"dkim.{name} = {relative!r}: {exc} (messages are signed {algorithm})") from exc


def config_path(explicit: str | None) -> Path:
    """The config file: --config, else NEWSLETTER_CONFIG, else ./config.toml."""
    return Path(explicit or os.environ.get("NEWSLETTER_CONFIG") or DEFAULT_CONFIG).resolve()


def load(path: Path, *, probe_keys: bool = True) -> Config:
    """The config at `path`, checked; `probe_keys=False` only reads the DKIM keys (`check_dkim`)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    config = parse(data, path)
    check_secrets(config)
    check_addresses(config.publication)
    check_transport(config, os.environ)
    check_dkim(config, probe=probe_keys)
    check_bounces(config, os.environ)
    return config



# -- Secrets, webhooks and trusted proxies --------------------------------------------------------
# A secret is only as good as its length: a short signing key falls to an offline brute force
# from any one link, and then every subscriber's links can be forged.
SECRET_MIN_CHARS = 32
MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
SECRET_KEY_ENV = "NEWSLETTER_SECRET_KEY"
SECRET_KEY_PURPOSE = "signs the links in emails and pages"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def strong_secret(env_name: str, value: str, purpose: str) -> None:
    """Stop when a secret is too short to resist guessing; says how to make a good one."""
    if len(value) < SECRET_MIN_CHARS:
        raise ConfigError(
            f"environment variable {env_name} holds {len(value)} characters; it {purpose} and needs at least "
            f"{SECRET_MIN_CHARS} random ones. Make one with: {MAKE_SECRET}")


def _looks_like_secret(value: str) -> bool:
    """True for a value that is not a plausible variable name (a pasted token, key or password)."""
    if not _ENV_NAME.fullmatch(value):
        return True
    # Variable names are words joined by '_'; a long run of letters and digits without one is a token.
    return len(value) >= 20 and "_" not in value and any(c.isdigit() for c in value)


def check_env_names(data: Mapping[str, Any], where: str = "") -> None:
    """Every `*_env` key must name an environment variable; a secret pasted there is refused
    without being repeated, so the error message (and any log holding it) does not leak it."""
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if isinstance(value, Mapping):
            check_env_names(value, path)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    check_env_names(item, f"{path}[{i}]")
        elif str(key).endswith("_env") and isinstance(value, str) and value and _looks_like_secret(value):
            raise ConfigError(
                f"{path}: the value (not shown) looks like a secret, not the name of an environment variable; "
                f"put the secret in an environment variable and write that variable's name here, "
                f"e.g. {key} = \"NEWSLETTER_{str(key).removesuffix('_env').upper()}\"")


def _networks(values: list[str]) -> str | None:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"IP addresses or CIDR networks such as '127.0.0.1' or '10.0.0.0/8' ({value!r} is neither)"
    return None


def _required(value: str) -> str | None:
    return None if value else "the name of an environment variable"


@dataclass(frozen=True)
class PostmarkWebhook:
    """HTTP basic auth credentials of Postmark's webhook URL, each in its own variable."""

    username_env: str = field(metadata=check(_required))
    password_env: str = field(metadata=check(_required))


@dataclass(frozen=True)
class SendgridWebhook:
    """SendGrid's signed event webhook verification key: a public key, used only to verify."""

    public_key_env: str = field(metadata=check(_required))


@dataclass(frozen=True)
class MailgunWebhook:
    """Mailgun's HTTP webhook signing key (HMAC)."""

    signing_key_env: str = field(metadata=check(_required))


@dataclass(frozen=True)
class WebhooksConfig:
    """One section per provider; a provider's route answers 404 unless its section is here."""

    postmark: PostmarkWebhook | None = None
    sendgrid: SendgridWebhook | None = None
    mailgun: MailgunWebhook | None = None


_WEBHOOK_SECTIONS: dict[str, type] = {"postmark": PostmarkWebhook, "sendgrid": SendgridWebhook,
                                      "mailgun": MailgunWebhook}


def _webhooks(data: Any) -> WebhooksConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f"webhooks = {data!r}: expected a table with [webhooks.postmark], [webhooks.sendgrid] "
                          "or [webhooks.mailgun]")
    unknown = sorted(set(data) - set(_WEBHOOK_SECTIONS))
    if unknown:
        raise ConfigError(f"webhooks.{unknown[0]}: unknown provider; expected one of {', '.join(_WEBHOOK_SECTIONS)}")
    return WebhooksConfig(**{name: _build(cls, f"webhooks.{name}", data[name])
                             for name, cls in _WEBHOOK_SECTIONS.items() if name in data})


_OLD_WEBHOOK_ADVICE = {
    "postmark": '[webhooks.postmark]\nusername_env = "POSTMARK_WEBHOOK_USER"\npassword_env = "POSTMARK_WEBHOOK_PASSWORD"',
    "sendgrid": '[webhooks.sendgrid]\npublic_key_env = "SENDGRID_WEBHOOK_PUBLIC_KEY"',
    "mailgun": '[webhooks.mailgun]\nsigning_key_env = "MAILGUN_WEBHOOK_SIGNING_KEY"',
}


def refuse_shared_webhook_secret(data: Mapping[str, Any]) -> None:
    """`[transport].webhook_secret_env` shared one variable among the three providers, so SendGrid's
    public key also opened the Mailgun and Postmark routes. It cannot be kept safely: say what replaces it."""
    transport = data.get("transport")
    if not isinstance(transport, Mapping) or "webhook_secret_env" not in transport:
        return
    kind = transport.get("kind")
    sections = [_OLD_WEBHOOK_ADVICE[kind]] if kind in _OLD_WEBHOOK_ADVICE else list(_OLD_WEBHOOK_ADVICE.values())
    raise ConfigError(
        "transport.webhook_secret_env: no longer read (one variable shared by every provider let anyone who "
        "knows SendGrid's public key forge Mailgun and Postmark events); remove it and configure each "
        "provider's webhook in its own section, with its own variables, e.g.\n" + "\n".join(sections))


def _secret_env_names(config: Config) -> list[tuple[str, str]]:
    """(variable, purpose) of every shared secret the config names; all must be strong when set."""
    names = [(SECRET_KEY_ENV, SECRET_KEY_PURPOSE),
             (config.web.operator_token_env, "is the operator API's bearer token")]
    if config.webhooks.postmark:
        names.append((config.webhooks.postmark.password_env, "is the Postmark webhook's basic auth password"))
    if config.webhooks.mailgun:
        names.append((config.webhooks.mailgun.signing_key_env, "is the Mailgun webhook signing key"))
    return names


def check_secrets(config: Config) -> None:
    """At start: every shared secret that is set is long enough; SendGrid's key is a readable public key."""
    for env_name, purpose in _secret_env_names(config):
        value = os.environ.get(env_name, "") if env_name else ""
        if value:
            strong_secret(env_name, value, purpose)
    if config.webhooks.sendgrid:
        value = os.environ.get(config.webhooks.sendgrid.public_key_env, "")
        if value:
            from newsletter.web.webhooks import load_sendgrid_key

            load_sendgrid_key(value, config.webhooks.sendgrid.public_key_env)


BOUNCE_MAILBOX_KINDS = ("imap", "maildir")
BOUNCE_TLS_MODES = ("ssl", "starttls", "none")


@dataclass(frozen=True)
class BouncesConfig:
    """Where SMTP bounces and complaints arrive, and the VERP envelope sender that leads them there."""

    # `local@domain`: each SMTP copy's Return-Path is `local+TOKEN@domain`, which must reach the mailbox.
    return_path: str = field(metadata=check(lambda v: _address(v) or (
        "a bare address such as 'bounces@newsletter.example.org' (no name, no '+')"
        if "<" in v or "+" in v.partition("@")[0] else None)))
    kind: str = field(metadata=check(_one_of(*BOUNCE_MAILBOX_KINDS)))
    # maildir: the Maildir folder a local alias delivers the return path's mail into.
    path: str = ""
    # imap:
    host: str = ""
    port: int = field(default=993, metadata=check(_port))
    tls: str = field(default="ssl", metadata=check(_one_of(*BOUNCE_TLS_MODES)))
    username: str = ""
    password_env: str = ""
    mailbox: str = "INBOX"
    # Processed messages are moved here (created when missing); what is left for a person stays.
    processed_folder: str = "Processed"
    # A PEM bundle of CA certificates trusted in addition to the system's (a private server's CA).
    ca_file: str = ""
    timeout_seconds: float = field(default=30.0, metadata=check(_positive))
    # Messages read per fetch at most: a flood is worked off over several cycles.
    max_messages: int = field(default=1000, metadata=check(_positive))


def _bounces(data: Any) -> BouncesConfig | None:
    if data is None:
        return None
    bounces = _build(BouncesConfig, "bounces", data)
    if bounces.kind == "maildir" and not bounces.path:
        raise ConfigError("bounces.path: missing; expected the Maildir folder the bounce address delivers into")
    if bounces.kind == "imap":
        for key in ("host", "username", "password_env"):
            if not getattr(bounces, key):
                raise ConfigError(f"bounces.{key}: missing; expected it with kind = \"imap\"")
        if bounces.tls == "none" and bounces.host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(f"bounces.tls = 'none': expected 'ssl' or 'starttls' for {bounces.host!r}, since "
                              "the mailbox password would cross the network in clear")
    return bounces


def check_bounces(config: Config, environ: Mapping[str, str]) -> None:
    """The IMAP bounce mailbox's password is in the environment before anything runs."""
    bounces = config.bounces
    if bounces is not None and bounces.kind == "imap" and not environ.get(bounces.password_env):
        raise ConfigError(f"bounces.password_env = {bounces.password_env!r}: the environment variable "
                          f"{bounces.password_env} is not set; expected it to hold the bounce mailbox's password")
