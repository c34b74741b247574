"""Render a mailing once: jinja2 -> MJML -> HTML, a plain-text part, a subject and a preheader.

The output holds placeholders (see `placeholders`) and nothing about any subscriber, so one
rendering serves every copy. Brief content is hostile until proven otherwise: titles and
bylines are cleaned to one line of text, HTML is re-sanitised and its images and tables
constrained so nothing can widen the layout, and every value is escaped by the templates.
"""

from __future__ import annotations

import functools
import hashlib
import html as html_module
import json
import re
import textwrap
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import jinja2
import mjml
from jinja2.sandbox import SandboxedEnvironment
from lxml import html as lxml_html
from markupsafe import Markup

from newsletter.briefs import Brief
from newsletter.config import Config, EditionConfig
from newsletter.countries import Countries
from newsletter.digest import i18n, placeholders
from newsletter.errors import RenderError
from newsletter.excerpt import excerpt
from newsletter.sanitize import absolute_url, clean_html, clean_text

# The project's own templates; a `templates/` folder beside the config file overrides them.
DEFAULT_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
HTML_TEMPLATE = "email/digest.mjml.j2"
TEXT_TEMPLATE = "email/digest.txt.j2"
# The content column of the MJML layout (600 px less padding): no image is wider.
CONTENT_WIDTH = 552
PREHEADER_CHARS = 150
# RFC 5322 section 2.1.1: lines of at most 78 characters; only a URL longer than that stands alone.
TEXT_WIDTH = 78
_PLACEHOLDERS = (*placeholders.NAMES, placeholders.PERSONAL_BEGIN, placeholders.PERSONAL_END)


@dataclass(frozen=True)
class RenderedMailing:
    subject: str
    preheader: str
    html: str
    text: str
    content_hash: str


@dataclass(frozen=True)
class DigestItem:
    """One brief as the templates see it: clean text, safe HTML, absolute links."""

    countries: str
    title: str
    url: str
    byline: str
    date: str
    lede_html: Markup
    lede_text: str
    analysis: str  # excerpt text, paragraphs separated by blank lines; "" when the brief has none
    links: tuple[str, ...]  # links inside the lede, which the text part lists so it carries every link

    @property
    def analysis_paragraphs(self) -> list[str]:
        return self.analysis.split("\n\n") if self.analysis else []

    @property
    def lede_paragraphs(self) -> list[str]:
        return self.lede_text.split("\n\n") if self.lede_text else []

    @property
    def references(self) -> list[tuple[int, str]]:
        """The text part's numbered links: [1] the brief itself, then the links in its lede, each once."""
        return list(enumerate((self.url, *self.links), start=1))


def render_mailing(
    config: Config,
    edition: EditionConfig,
    briefs: list[Brief],
    *,
    mailing_id: int | None,
    created_at: datetime,
) -> RenderedMailing:
    """Subject, preheader, HTML and text of a mailing, with personalisation placeholders.

    A draft (`mailing_id` None) has no web copy, so it shows no "view in browser" link."""
    language = edition.language
    words = i18n.messages(language)
    pub = config.publication
    countries = Countries.from_config(config)
    day = created_at.astimezone(ZoneInfo(edition.timezone)).date()
    items = [_item(config, edition, countries, brief) for brief in briefs]
    country_names = _distinct(name for brief in briefs for name in (countries.name(s, language) for s in brief.countries))
    edition_title = clean_text(edition.title) or edition.name
    publication_name = clean_text(pub.name)
    subject = render_subject(
        edition.subject or words["subject"],
        count=len(items),
        countries=i18n.join(country_names, language, limit=3),
        date=i18n.long_date(day, language),
        edition=edition_title,
        publication=publication_name,
    )
    preheader = _preheader([item.title for item in items], language)
    public_url = pub.public_url.rstrip("/")
    licence_url = pub.licence_url_for(language)
    context: dict[str, Any] = {
        "t": dict(words),
        "language": language,
        "publication": pub,
        "publication_name": publication_name,
        "edition_title": edition_title,
        "date": i18n.long_date(day, language),
        "subject": subject,
        "preheader": preheader,
        "items": items,
        "intro": intro(words, len(items), sum(1 for item in items if item.analysis), publication_name),
        "analysis_heading": words["analysis"].format(publication=publication_name),
        "licence_html": Markup(words["licence"]).format(
            publication=publication_name,
            licence=Markup('<a href="{}">{}</a>').format(licence_url, pub.licence)),
        "licence_text": words["licence_text"].format(
            publication=publication_name, licence=pub.licence, licence_url=licence_url),
        "donate_url": donate_link(pub.donate_url, pub.donate_params),
        "donate_body": words["donate_body"].format(publication=publication_name),
        "why": words["why"].format(edition=edition_title, publication=publication_name),
        "archive_url": f"{public_url}/archive/{mailing_id}" if mailing_id is not None else "",
        "site_url": pub.site_url,
        "postal_address": clean_text(pub.postal_address),
        "ph": {n: placeholders.placeholder(n) for n in _PLACEHOLDERS},
        "ph_html": {n: placeholders.placeholder(n + "_html") for n in _PLACEHOLDERS},
    }
    folders = _folders(config)
    mjml_source = _render(_environment(folders, autoescape=True), HTML_TEMPLATE, context)
    try:
        html = mjml.mjml2html(mjml_source, disable_comments=True, fonts={})
    except Exception as exc:  # MRML raises its own error type for invalid MJML
        raise RenderError(f"{HTML_TEMPLATE}: MJML could not be converted to HTML: {exc}") from exc
    text = _render(_environment(folders, autoescape=False), TEXT_TEMPLATE, context)
    digest = hashlib.sha256(json.dumps([subject, preheader, html, text], ensure_ascii=False).encode()).hexdigest()
    return RenderedMailing(subject=subject, preheader=preheader, html=html, text=text, content_hash=digest)


def render_subject(template: str, **values: Any) -> str:
    """The edition's subject template over count, countries, date, edition and publication: one line."""
    try:
        rendered = _subject_template(template).render(**values)
    except jinja2.TemplateError as exc:
        raise RenderError(f"editions.subject = {template!r}: cannot render: {exc}") from exc
    # A header never carries a line break, whatever the template or the content produced.
    return clean_text(rendered)


@functools.lru_cache(maxsize=64)
def _subject_template(template: str) -> jinja2.Template:
    """The compiled subject template, kept: compiling it was a fifth of each rendering."""
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    return env.from_string(template)


def intro(words: dict[str, str], count: int, analysed: int, publication: str) -> str:
    """The opening line, true to the briefs: analysis is promised for each only when each has one."""
    if count == 1:
        key = "intro_one" if analysed else "intro_one_plain"
    elif analysed == count:
        key = "intro_many"
    elif analysed == 0:
        key = "intro_many_plain"
    else:
        key = "intro_some_one" if analysed == 1 else "intro_some"
    return words[key].format(count=count, analysed=analysed, publication=publication)


def donate_link(url: str, params: dict[str, str]) -> str:
    """The donate URL with the campaign parameters added to its query."""
    if not url or not params:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _item(config: Config, edition: EditionConfig, countries: Countries, brief: Brief) -> DigestItem:
    pub = config.publication
    language = edition.language
    words = i18n.messages(language)
    url = absolute_url(brief.url, pub.site_url) or pub.site_url
    publisher = clean_text(pub.name)
    authors = [a for a in (clean_text(a) for a in brief.authors) if a and a != publisher]
    byline = f"{words['by']} {i18n.join(authors, language)} · {publisher}" if authors else publisher
    day = brief.published_at.astimezone(ZoneInfo(edition.timezone)).date()
    lede_html = email_html(brief.lede, url)
    analysis, _ = excerpt(clean_html(brief.analysis, url), edition.excerpt_chars)
    # A lede too long to carry whole (or the only text, when there is no analysis) becomes an excerpt.
    limit = edition.excerpt_chars * (2 if analysis else 1)
    lede_text, cut = excerpt(lede_html, limit)
    if cut:
        lede_html = Markup("".join(f'<p dir="auto">{Markup.escape(p)}</p>' for p in lede_text.split("\n\n")))
    links = _distinct(re.findall(r'href="([^"]+)"', lede_html))
    return DigestItem(
        countries=" · ".join(_distinct(countries.name(s, language) for s in brief.countries)),
        title=clean_text(brief.title) or url,
        url=url,
        byline=byline,
        date=i18n.short_date(day, language),
        lede_html=lede_html,
        lede_text=lede_text,
        analysis=analysis,
        links=tuple(html_module.unescape(link) for link in links if html_module.unescape(link) != url),
    )


def email_html(fragment: str, base_url: str) -> Markup:
    """Brief HTML made safe for an email: re-sanitised, images and tables held to the column."""
    cleaned = clean_html(fragment, base_url)
    if not cleaned:
        return Markup("")
    root = lxml_html.fragment_fromstring(cleaned, create_parent="div")
    for element in root.iter():
        tag = element.tag
        if tag == "img":
            width = element.get("width")
            # Compare by length first: a hostile width of thousands of digits is no number to parse.
            if width and (len(width) > 4 or int(width) > CONTENT_WIDTH):
                element.set("width", str(CONTENT_WIDTH))
            element.attrib.pop("height", None)
            element.set("style", "display:block;max-width:100%;height:auto;border:0;")
        elif tag in ("p", "li", "blockquote", "h2", "h3", "h4", "h5", "h6", "figcaption"):
            # Right-to-left quotes and names read in their own direction.
            element.set("dir", "auto")
        elif tag == "table":
            element.set("style", "width:100%;table-layout:fixed;border-collapse:collapse;")
        elif tag == "pre":
            element.set("style", "white-space:pre-wrap;overflow-wrap:anywhere;")
    head = Markup.escape(root.text or "")
    return head + Markup("".join(lxml_html.tostring(child, encoding="unicode") for child in root))


def _preheader(titles: Sequence[str], language: str) -> str:
    words = i18n.messages(language)
    text = ""
    for i, title in enumerate(titles):
        candidate = f"{text} · {title}" if text else title
        if len(candidate) > PREHEADER_CHARS:
            if not text:
                return candidate[: PREHEADER_CHARS - 1].rsplit(" ", 1)[0] + "…"
            return f"{text} {words['preheader_more'].format(n=len(titles) - i)}"
        text = candidate
    return text


def _distinct(values: Any) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _folders(config: Config) -> tuple[str, str]:
    """Where templates are looked up: beside the config first, then the project's own."""
    return str(config.resolve("templates")), str(DEFAULT_TEMPLATES)


def _finalize(value: Any) -> Any:
    """Every value a template outputs: content cannot carry a placeholder marker into a mailing."""
    if isinstance(value, placeholders.Placeholder):
        return value
    if isinstance(value, Markup):
        return Markup(placeholders.scrub(str(value))) if placeholders.MARK in value else value
    if isinstance(value, str):
        return placeholders.scrub(value)
    return value


@functools.lru_cache(maxsize=16)
def _environment(folders: tuple[str, ...], *, autoescape: bool) -> jinja2.Environment:
    """One environment per template folders, kept: it holds the compiled templates, whose
    compiling cost three quarters of each rendering (a mailing with per-reader copies renders
    hundreds). Jinja still reloads a template whose file changed (auto_reload); an override
    first added beside the config after a template was loaded is used from the next start."""
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(folder) for folder in folders]),
        autoescape=autoescape, finalize=_finalize, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    env.filters["wrap"] = lambda text, indent="": _wrap(str(text), indent)
    return env


@functools.lru_cache(maxsize=4096)
def _wrap(text: str, indent: str) -> str:
    """A paragraph of the text part at 78 columns; kept, since each per-reader copy of a mailing
    wraps the same paragraphs again (a quarter of each rendering)."""
    return textwrap.fill(text, TEXT_WIDTH, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


def _render(env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template {name} not found in templates/ beside the config or in the project") from exc
    except jinja2.TemplateError as exc:
        raise RenderError(f"{name}: cannot render: {exc}") from exc
