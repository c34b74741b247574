"""The operator's configuration: one TOML file, validated before anything runs.

Every section is a frozen dataclass. Loading checks each key's type and value and
stops with a `ConfigError` naming the key, the value found and what was expected,
so a typo never turns into a half-run job. Secrets are never read from the file:
the file only names the environment variables that hold them.
"""

from __future__ import annotations

import dataclasses
import os
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
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError:
        return "a five-field cron expression such as '0 7 * * *'"
    return None


def _language(value: str) -> str | None:
    return None if value.isalpha() and 2 <= len(value) <= 3 and value.islower() else "a language code such as 'en' or 'es'"


def _name(value: str) -> str | None:
    ok = value and all(c.isalnum() or c in "-_" for c in value) and value.isascii()
    return None if ok else "a name of letters, digits, '-' and '_'"


def _address(value: str) -> str | None:
    from email.utils import parseaddr

    _, addr = parseaddr(value)
    if "@" not in addr or "\n" in value or "\r" in value:
        return "an email address such as 'Name <news@example.org>'"
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
    reply_to: str = field(default="", metadata=check(lambda v: v and _address(v)))
    logo_url: str = field(default="", metadata=check(lambda v: v and _url(v)))
    # Mailbox that receives mailto: unsubscribe requests (List-Unsubscribe).
    unsubscribe_mailto: str = ""
    # Feedback-ID sender tag (Gmail's feedback loop), e.g. "insightcrime".
    feedback_id_sender: str = ""


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
    webhook_secret_env: str = ""
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


@dataclass(frozen=True)
class DkimConfig:
    selector: str = ""
    domain: str = ""
    private_key_path: str = ""


@dataclass(frozen=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata=check(_port))
    operator_token_env: str = "NEWSLETTER_OPERATOR_TOKEN"
    subscribe_rate_per_hour: int = field(default=20, metadata=check(_positive))
    confirm_hours: int = field(default=48, metadata=check(_positive))


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
        """The HMAC key for tokens, from NEWSLETTER_SECRET_KEY."""
        return require_secret("NEWSLETTER_SECRET_KEY", "signs the links in emails and pages").encode()

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


def parse(data: Mapping[str, Any], path: Path) -> Config:
    """Build a validated Config from parsed TOML (pure: no I/O)."""
    sections = {
        "publication", "store", "sources", "collect", "feed", "editions", "transport", "dkim", "web",
        "tracking",
    }
    unknown = sorted(set(data) - sections)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section; expected one of {', '.join(sorted(sections))}")
    if "publication" not in data:
        raise ConfigError("publication: missing; expected a [publication] table with name, site_url, public_url, sender")

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
    )


def config_path(explicit: str | None) -> Path:
    """The config file: --config, else NEWSLETTER_CONFIG, else ./config.toml."""
    return Path(explicit or os.environ.get("NEWSLETTER_CONFIG") or DEFAULT_CONFIG).resolve()


def load(path: Path) -> Config:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse(data, path)

