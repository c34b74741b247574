"""The `wordpress` source kind: the REST API's /wp-json/wp/v2/posts, page by page, incrementally.

The first run takes the newest posts (orderby=modified, desc, up to max_items). Later runs ask
for posts modified after the last run's high-water mark (the `cursor`, a modified_gmt in UTC),
oldest first, so a run capped by max_items still advances without a gap. The cursor is sent
with its zone (+00:00): WordPress converts it to site time before comparing it with the
site-local `post_modified` column. A site that sends ETag or Last-Modified answers a repeated
question (the same cursor) with a 304.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import datetime
from typing import Any, Sequence

from newsletter.briefs import Brief
from newsletter.collect.extract import is_brief, parse_time, sort_terms, split_authors, split_body
from newsletter.collect.http import Fetcher, Response, StatusError
from newsletter.collect.source import Extraction, Harvest
from newsletter.errors import SourceError
from newsletter.sanitize import absolute_url, clean_html, clean_text

API = "/wp-json/wp/v2"
EMBED = "author,wp:term,wp:featuredmedia"


def slugify(term: str) -> str:
    """A WordPress-style slug of a category or tag name ("Crime Brief" → "crime-brief")."""
    bare = "".join(c for c in unicodedata.normalize("NFKD", term) if not unicodedata.combining(c)).lower()
    return "-".join("".join(c if c.isalnum() else " " for c in bare).split())


def decode_json(response: Response) -> Any:
    """The JSON body, or a SourceError that says what came instead (an HTML page, usually)."""
    body = response.body.lstrip()
    if response.content_type == "text/html" or body[:1] == b"<":
        raise SourceError(
            f"{response.url}: answered HTML ({response.content_type or 'no content type'}), not JSON; "
            "is the WordPress REST API enabled at /wp-json/?"
        )
    try:
        return json.loads(response.text())
    except ValueError as exc:
        raise SourceError(f"{response.url}: not valid JSON: {exc}") from exc


def posts_params(ext: Extraction, *, page: int, cursor: str | None, term_ids: dict[str, list[int]]) -> dict[str, Any]:
    source = ext.source
    params: dict[str, Any] = {
        "per_page": source.per_page,
        "page": page,
        "_embed": EMBED,
        "orderby": "modified",
        "order": "asc" if cursor else "desc",
    }
    since = parse_time(cursor)
    if since:
        params["modified_after"] = since.isoformat()
    for taxonomy, ids in term_ids.items():
        params[taxonomy] = ",".join(str(i) for i in ids)
    if len(term_ids) == 2:
        # Configured categories and tags each select briefs: a post in either one is wanted.
        params["tax_relation"] = "OR"
    return params


def parse_posts(data: Any, ext: Extraction, base_url: str) -> tuple[list[Brief], int, datetime | None]:
    """(briefs, posts that are not briefs, latest modified time) of one page of the posts endpoint."""
    if not isinstance(data, list):
        raise SourceError(f"{base_url}{API}/posts: expected a JSON list of posts, got {type(data).__name__}")
    briefs: list[Brief] = []
    skipped = 0
    latest: datetime | None = None
    for post in data:
        brief = brief_from_post(post, ext, base_url) if isinstance(post, dict) else None
        modified = _modified(post) if isinstance(post, dict) else None
        if modified and (latest is None or modified > latest):
            latest = modified
        if brief is None:
            skipped += 1
        else:
            briefs.append(brief)
    return briefs, skipped, latest


def _rendered(post: dict[str, Any], name: str) -> str:
    value = post.get(name)
    if isinstance(value, dict):
        value = value.get("rendered")
    return value if isinstance(value, str) else ""


def _modified(post: dict[str, Any]) -> datetime | None:
    return parse_time(post.get("modified_gmt")) or parse_time(post.get("modified"))


def brief_from_post(post: dict[str, Any], ext: Extraction, base_url: str) -> Brief | None:
    """A Brief from one REST API post (with `_embed`), or None when it is not a published brief."""
    post_id = post.get("id")
    url = absolute_url(str(post.get("link") or ""), base_url)
    title = clean_text(_rendered(post, "title"))
    if not isinstance(post_id, int) or not url or not title or post.get("status", "publish") != "publish":
        return None
    # date_gmt is UTC; `date` is site-local without a zone and is only the fallback.
    published = parse_time(post.get("date_gmt")) or parse_time(post.get("date"))
    modified = _modified(post) or published
    if published is None or modified is None:
        return None
    embedded = post.get("_embedded") if isinstance(post.get("_embedded"), dict) else {}
    authors: list[str] = []
    for author in embedded.get("author") or []:
        if isinstance(author, dict) and isinstance(author.get("name"), str):
            authors.extend(a for a in split_authors(author["name"]) if a not in authors)
    terms = [
        term["name"]
        for group in embedded.get("wp:term") or []
        if isinstance(group, list)
        for term in group
        if isinstance(term, dict) and isinstance(term.get("name"), str)
    ]
    countries, tags = sort_terms(terms, ext.countries)
    if not is_brief(url, tags):
        return None
    content = _rendered(post, "content")
    if content:
        body = split_body(content, url, ext.rules, article_url=url)
        lede, analysis, image = body.lede, body.analysis, body.image_url
    else:
        # Posts fetched with _fields and no content: the excerpt is all the news there is.
        lede, analysis, image = clean_html(_rendered(post, "excerpt"), url), "", None
    for media in embedded.get("wp:featuredmedia") or []:
        if isinstance(media, dict) and isinstance(media.get("source_url"), str):
            image = absolute_url(media["source_url"], url) or image
            break
    return Brief(
        source=ext.source.name,
        key=str(post_id),
        url=url,
        title=title,
        published_at=published,
        modified_at=max(modified, published),
        language=ext.source.language,
        authors=tuple(authors),
        countries=countries,
        tags=tags,
        lede=lede,
        analysis=analysis,
        image_url=image,
    )


class WordPress:
    def __init__(self, ext: Extraction) -> None:
        self.ext = ext
        self.base = ext.source.url.rstrip("/")

    def harvest(self, fetcher: Fetcher, cursor: str | None) -> Harvest:
        term_ids = {}
        if self.ext.source.categories:
            term_ids["categories"] = self._term_ids(fetcher, "categories", self.ext.source.categories)
        if self.ext.source.tags:
            term_ids["tags"] = self._term_ids(fetcher, "tags", self.ext.source.tags)
        harvest = Harvest()
        latest = parse_time(cursor)
        page = 1
        seen = 0
        while True:
            params = posts_params(self.ext, page=page, cursor=cursor, term_ids=term_ids)
            try:
                response = fetcher.get(f"{self.base}{API}/posts", params, accept="application/json")
            except StatusError as exc:
                # Posts deleted while we paged can leave fewer pages than announced: WordPress
                # answers 400 (rest_post_invalid_page_number) for the missing one.
                # Posts shifted between pages, so some may have been passed over: keep the old
                # cursor and the next run asks again.
                if page > 1 and exc.status == 400:
                    return Harvest(briefs=harvest.briefs, skipped=harvest.skipped, cursor=None)
                raise
            if response.not_modified:
                break
            data = decode_json(response)
            briefs, skipped, page_latest = parse_posts(data, self.ext, self.base)
            harvest.briefs.extend(briefs)
            harvest.skipped += skipped
            seen += len(data)
            if page_latest and (latest is None or page_latest > latest):
                latest = page_latest
            total_pages = _int(response.headers.get("X-WP-TotalPages"), default=1)
            if page >= total_pages or page >= self.ext.source.max_pages or seen >= self.ext.source.max_items or not data:
                break
            page += 1
        harvest.cursor = latest.isoformat() if latest else None
        return harvest

    def _term_ids(self, fetcher: Fetcher, taxonomy: str, wanted: Sequence[str]) -> list[int]:
        slugs = [slugify(w) for w in wanted]
        response = fetcher.get(
            f"{self.base}{API}/{taxonomy}", {"slug": ",".join(slugs), "per_page": 100, "_fields": "id,slug,name"},
            accept="application/json", keep_body=True,
        )
        data = decode_json(response)
        if not isinstance(data, list):
            raise SourceError(f"{response.url}: expected a JSON list of {taxonomy}")
        found = {t.get("slug"): t.get("id") for t in data if isinstance(t, dict)}
        missing = [w for w, s in zip(wanted, slugs) if s not in found]
        if missing:
            raise SourceError(
                f"{self.base}: {taxonomy} {', '.join(repr(m) for m in missing)} not found on the site "
                f"(sources.{self.ext.source.name}.{taxonomy})"
            )
        return [int(found[s]) for s in slugs]


def _int(value: str | None, *, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
