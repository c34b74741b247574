"""Pure extraction shared by every source kind: body → lede and analysis, bylines, times, terms.

The rules follow the publisher's real shapes: the analysis starts at a heading such as
"InSight Crime Analysis" (any case and spacing, or Spanish "Análisis de InSight Crime");
page furniture (SEE ALSO promos, share bars, donate appeals, comment prompts, related
content, about blocks, tables of contents, "The post … appeared first on …") is dropped;
what is left is sanitised by `newsletter.sanitize.clean_html` with absolute URLs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Sequence
from urllib.parse import urlsplit

from lxml import etree
from lxml import html as lxml_html

from newsletter.countries import Countries, normalise
from newsletter.errors import SourceError
from newsletter.sanitize import absolute_url, clean_html, clean_text

# Paragraph text (whitespace collapsed) that is page furniture wherever it appears.
_FURNITURE_TEXT = re.compile(
    r"^(?:"
    r"(?:see also|read also|read more|related|ver tambi[eé]n|vea tambi[eé]n|lea tambi[eé]n|lee tambi[eé]n)\s*:.*"
    r"|the post .+ appeared first on .+"
    r"|la entrada .+ se public[oó] primero en .+"
    r"|share(?: icon)*|share (?:this|on)\b.*|sharetweet.*|compartir(?: en)?\b.{0,40}|tweet about this.*"
    r"|donate|donar|dona|haz una donaci[oó]n.*"
    r"|was this content helpful\?.*|¿?te result[oó] [uú]til este contenido\?.*"
    r"|we want to sustain .*|queremos mantener .*"
    r"|what are your thoughts\?.*|¿?qu[eé] opinas\?.*|¿?qu[eé] piensas\?.*"
    r"|we encourage readers to copy and distribute our work.*"
    r"|alentamos a los lectores a copiar y distribuir nuestro trabajo.*"
    r")$",
    re.IGNORECASE,
)
# A heading (or a paragraph that is only a heading) from which everything is furniture.
_STOP_HEADINGS = {
    normalise(t) for t in (
        "Related Content", "Related", "Related Posts", "Related Articles", "You might also like",
        "Contenido relacionado", "Artículos relacionados", "Relacionados", "Comments", "Comentarios",
        "Leave a Reply", "Deja un comentario",
    )
}
# Class and id words that mark furniture blocks in WordPress themes and plugins.
_FURNITURE_CLASS = re.compile(
    r"share|sharing|sharedaddy|social|jp-relatedposts|related|table-of-contents|ez-toc|\btoc\b|donat|"
    r"newsletter|subscribe|comment|breadcrumb|author-bio|author-box|about-|sidebar|widget|advert|promo|"
    r"post-navigation|nav-links|tags-links|cat-links",
    re.IGNORECASE,
)
_FURNITURE_TAGS = {"nav", "aside", "footer", "header", "form", "script", "style", "noscript", "template",
                   "iframe", "button", "svg"}
# Containers whose tags the sanitiser drops anyway: unwrapping them first puts every heading
# and paragraph at one level, so the body can be split at the analysis heading.
_WRAPPERS = {"div", "section", "article", "main", "span", "font", "center"}
_BLOCK_TAGS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "blockquote", "figure", "table", "pre", "hr"}
# A kicker line like "COLOMBIA / 28 OCT 2016 BY MIKE LASUSA EN".
_DATELINE = re.compile(r"^[^/]{2,80} / \d{1,2} [A-Za-z]{3,9}\.? \d{4}(?: (?:BY|POR) (?P<byline>.+?))?(?: EN| ES)?$")
_AUTHOR_SPLIT = re.compile(r"\s*(?:,\s*(?:and|y|&)\s+|,\s*|\s+and\s+|\s+y\s+|\s*&\s*)\s*", re.IGNORECASE)
_BY_PREFIX = re.compile(r"^(?:by|por)\s+", re.IGNORECASE)
# Profiles (criminal personalities, groups) live in country sections, not under the news path.
_PROFILE_SECTION = re.compile(r"^/[^/]*(?:-organized-crime-news|crimen-organizado[^/]*)/", re.IGNORECASE)
_PROFILE_TAG = re.compile(r"(?:personalities|personajes|perfiles|profiles)$", re.IGNORECASE)


@dataclass(frozen=True)
class BodyRules:
    """What separates the lede from the analysis, and what is furniture, for one source."""

    analysis_headings: frozenset[str]
    stop_headings: frozenset[str]

    @classmethod
    def for_publication(cls, publication_name: str, extra_headings: Sequence[str] = ()) -> "BodyRules":
        headings = [f"{publication_name} Analysis", f"Análisis de {publication_name}",
                    f"Análisis {publication_name}", "Analysis", "Análisis", *extra_headings]
        stops = [f"About {publication_name}", f"Acerca de {publication_name}", f"Sobre {publication_name}"]
        return cls(
            analysis_headings=frozenset(normalise(h) for h in headings),
            stop_headings=frozenset(_STOP_HEADINGS | {normalise(s) for s in stops}),
        )


@dataclass(frozen=True)
class Body:
    lede: str  # sanitised HTML
    analysis: str  # sanitised HTML, empty when there is no analysis heading
    image_url: str | None  # the featured image when the body carried one


def split_body(fragment: str, base_url: str, rules: BodyRules, *, article_url: str = "") -> Body:
    """Split an article body into lede and analysis, without furniture, sanitised."""
    if not fragment.strip():
        return Body("", "", None)
    root = lxml_html.fragment_fromstring(fragment, create_parent="div")
    return split_element(root, base_url, rules, article_url=article_url)


def split_element(root: lxml_html.HtmlElement, base_url: str, rules: BodyRules, *, article_url: str = "") -> Body:
    """`split_body` for an element already parsed (the article's content root). Modifies `root`."""
    image = _take_featured_image(root, base_url)
    _drop_furniture_blocks(root)
    _unwrap(root)
    lede: list[str] = []
    analysis: list[str] = []
    target = lede
    for block in _blocks(root):
        text = " ".join(block.text_content().split())
        key = normalise(text)
        if key and key in rules.stop_headings:
            break
        if target is lede and key and key in rules.analysis_headings and _is_heading_like(block):
            target = analysis
            continue
        if _FURNITURE_TEXT.match(text) or _DATELINE.match(text) or _is_self_link(block, article_url):
            continue
        if not text and not block.xpath("descendant-or-self::img"):
            continue
        target.append(lxml_html.tostring(block, encoding="unicode"))
    return Body(clean_html("".join(lede), base_url), clean_html("".join(analysis), base_url), image)


def _blocks(root: lxml_html.HtmlElement) -> list[lxml_html.HtmlElement]:
    """The top-level blocks of `root`, loose text and inline runs (split at <br>) wrapped in <p>."""
    blocks: list[lxml_html.HtmlElement] = []
    run: lxml_html.HtmlElement | None = None

    def add_text(text: str | None) -> None:
        nonlocal run
        if not text or not text.strip():
            return
        if run is None:
            run = lxml_html.Element("p")
        if len(run):
            run[-1].tail = (run[-1].tail or "") + text
        else:
            run.text = (run.text or "") + text

    def flush() -> None:
        nonlocal run
        if run is not None:
            blocks.append(run)
        run = None

    add_text(root.text)
    for child in list(root):
        tail, child.tail = child.tail, None
        if not isinstance(child.tag, str):
            pass
        elif child.tag in _BLOCK_TAGS:
            flush()
            blocks.append(child)
        elif child.tag == "br":
            flush()
        else:
            if run is None:
                run = lxml_html.Element("p")
            run.append(child)
        add_text(tail)
    flush()
    return blocks


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _is_heading_like(element: lxml_html.HtmlElement) -> bool:
    if element.tag in ("h1", "h2", "h3", "h4", "h5", "h6", "strong", "b"):
        return True
    # A paragraph that holds only bold text or is short enough to be a heading line.
    return element.tag == "p" and len(element.text_content()) < 80


def _is_self_link(element: lxml_html.HtmlElement, article_url: str) -> bool:
    """The "<p><a href=URL>Title</a></p>" that WordPress feeds put before the content."""
    if not article_url or element.tag != "p":
        return False
    links = element.findall("a")
    text = " ".join(element.text_content().split())
    return (len(links) == 1 and links[0].get("href", "").rstrip("/") == article_url.rstrip("/")
            and " ".join(links[0].text_content().split()) == text)


def _take_featured_image(root: lxml_html.HtmlElement, base_url: str) -> str | None:
    """Remove WordPress's featured image (class wp-post-image) from the body and return its URL."""
    for img in root.xpath('.//img[contains(concat(" ", normalize-space(@class), " "), " wp-post-image ")]'):
        src = absolute_url(img.get("src", ""), base_url)
        holder = img
        while holder.getparent() is not None and holder.getparent() is not root and \
                holder.getparent().tag in ("figure", "a", "p", "div") and not \
                " ".join(holder.getparent().text_content().split()):
            holder = holder.getparent()
        if holder.getparent() is not None and holder.getparent().tag == "figure":
            holder = holder.getparent()
        holder.drop_tree()
        if src:
            return src
    return None


def _drop_furniture_blocks(root: lxml_html.HtmlElement) -> None:
    doomed = []
    for element in root.iter():
        if not isinstance(element.tag, str) or element is root:
            continue
        marks = f"{element.get('class', '')} {element.get('id', '')}"
        if element.tag in _FURNITURE_TAGS or (marks.strip() and _FURNITURE_CLASS.search(marks)):
            doomed.append(element)
    for element in doomed:
        if element.getparent() is not None:
            element.drop_tree()


def _unwrap(root: lxml_html.HtmlElement) -> None:
    for element in list(root.iter()):
        if element is not root and isinstance(element.tag, str) and element.tag in _WRAPPERS \
                and element.getparent() is not None:
            # Only unwrap block containers; inline spans inside paragraphs stay where they are.
            if element.tag == "span" and element.getparent() is not root:
                continue
            element.drop_tag()


def split_authors(byline: str) -> tuple[str, ...]:
    """"A and B", "A, B and C", "A y B", "By A & B" → each author once, in order."""
    text = _BY_PREFIX.sub("", clean_text(byline))
    names: list[str] = []
    for part in _AUTHOR_SPLIT.split(text):
        name = part.strip(" ,;")
        if name and name not in names:
            names.append(name)
    return tuple(names)


def authors_from(bylines: Iterable[str]) -> tuple[str, ...]:
    names: list[str] = []
    for byline in bylines:
        for name in split_authors(byline):
            if name not in names:
                names.append(name)
    return tuple(names)


def dateline_authors(text: str) -> tuple[str, ...]:
    """Authors from a kicker such as "COLOMBIA / 28 OCT 2016 BY MIKE LASUSA EN" (title-cased)."""
    match = _DATELINE.match(" ".join(text.split()))
    if not match or not match.group("byline"):
        return ()
    return split_authors(match.group("byline").title())


def parse_time(value: str | None, *, assume_utc: bool = True) -> datetime | None:
    """An ISO 8601 time as aware UTC; a time without a zone is taken as UTC (WordPress *_gmt fields)."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        if not assume_utc:
            return None
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def sort_terms(terms: Iterable[str], countries: Countries) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split tags and categories into (country slugs, other tags), each once, in order."""
    found: list[str] = []
    tags: list[str] = []
    for term in terms:
        name = clean_text(term)
        if not name:
            continue
        slug = countries.match(name)
        if slug:
            if slug not in found:
                found.append(slug)
        elif name not in tags:
            tags.append(name)
    return tuple(found), tuple(tags)


def is_brief(url: str, tags: Iterable[str]) -> bool:
    """False for profiles of criminal groups and personalities, which share feeds with briefs.

    The rule, from the publisher's shapes: a profile lives in a country section
    ("/mexico-organized-crime-news/…", "/…-crimen-organizado/…") rather than under the news
    path, or carries a "… Personalities" / "… Personajes" / "… Profiles" tag.
    """
    if _PROFILE_SECTION.match(urlsplit(url).path or "/"):
        return False
    return not any(_PROFILE_TAG.search(clean_text(t)) for t in tags)


def refuse_entity_declarations(data: bytes, what: str) -> None:
    """Refuse XML that declares entities (billion laughs, external entities) before any parser sees it."""
    head = data[:65536]
    doctype = re.search(rb"<!DOCTYPE[^>\[]*(\[)?", head, re.IGNORECASE)
    if doctype and (doctype.group(1) or re.search(rb"<!ENTITY", data, re.IGNORECASE)):
        raise SourceError(f"XML declares entities in a DOCTYPE; refused (entity expansion attack?): {what}")


def html_document(data: str) -> lxml_html.HtmlElement:
    """Parse a whole HTML page; raises ValueError when there is nothing to parse."""
    try:
        return lxml_html.document_fromstring(data)
    except (etree.ParserError, ValueError) as exc:
        raise ValueError(f"not an HTML page: {exc}") from exc
