"""The `wordpress` source kind: the REST API's /wp-json/wp/v2/posts, walked by modified time.

Every run starts with one request for the newest page (`orderby=modified&order=desc`).
Its X-WP-Total and newest modified time, compared with the last run's, tell an unchanged
site at the cost of that one request. Otherwise the walk goes on:

- The first run walks down from the newest post, up to `max_items`.
- Later runs walk up from the cursor (the last modified time collected), oldest first, so a
  run capped by `max_items` or `max_pages` still advances without a gap; when the first
  page already reaches below the cursor, it holds every change. They also ask for the posts
  published since the newest publication seen (`orderby=date&after=`): WordPress publishes a
  scheduled post without moving its modified time.

The walk never uses page numbers over `orderby=modified`: WordPress's database breaks ties
between equal modified times (a bulk publish or edit gives one time to many posts) in no
fixed order, so page 2 of a query can overlap page 1 and posts fall between them. Each
request instead starts from the last modified time seen (`modified_after`/`modified_before`
that second minus or plus one, with `exclude=` the ids the page held in that second, so that
second's other posts come first and none comes twice); a page that holds nothing but one modified time is completed by asking for exactly that
second ordered by post id, which is a fixed order. Times are sent with their zone (+00:00):
WordPress converts them to site time before comparing with its `post_modified` column.

Retractions: the public briefs of the last `RETRACTION_DAYS` that the walk did not see are
asked for by id (`include=`, a hundred at a time); one that is missing, or no longer public,
is asked for alone to learn why (401/403: no longer public; 404/410: deleted) and withdrawn.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Sequence

from lxml import etree

from newsletter.briefs import RANK_API, Brief
from newsletter.collect.extract import is_brief, parse_time, sort_terms, split_authors, split_body
from newsletter.collect.http import Fetcher, Response, StatusError, short_url, status_reason
from newsletter.collect.source import BadItem, Extraction, Harvest, Memory, NotPublic, Rejected
from newsletter.errors import SourceError
from newsletter.identity import post_id_of, site_of
from newsletter.sanitize import absolute_url, clean_html, clean_text
from newsletter.store import utcnow

API = "/wp-json/wp/v2"
EMBED = "author,wp:term,wp:featuredmedia"
# WordPress's own cap on per_page, and so on include= batches and on a tie's pages.
MAX_PER_PAGE = 100
SECOND = timedelta(seconds=1)
# How long the ids of the configured categories and tags are trusted before asking again.
TERMS_TTL = timedelta(hours=24)
# Status codes with which WordPress answers for a single post that is no longer public.
GONE = {404: "deleted", 410: "deleted"}
HIDDEN = {401, 403}


def slugify(term: str) -> str:
    """A WordPress-style slug of a category or tag name ("Crime Brief" → "crime-brief")."""
    bare = "".join(c for c in unicodedata.normalize("NFKD", term) if not unicodedata.combining(c)).lower()
    return "-".join("".join(c if c.isalnum() else " " for c in bare).split())


def decode_json(response: Response) -> Any:
    """The JSON body, or a SourceError that says what came instead (an HTML page, usually)."""
    body = response.body.lstrip()
    if response.content_type == "text/html" or body[:1] == b"<":
        raise SourceError(
            f"answered HTML ({response.content_type or 'no content type'}), not JSON; "
            f"is the WordPress REST API enabled at /wp-json/?: {short_url(response.url)}"
        )
    try:
        return json.loads(response.text())
    except ValueError as exc:
        raise SourceError(f"not valid JSON ({exc}): {short_url(response.url)}") from exc


def _rendered(post: dict[str, Any], name: str) -> str:
    value = post.get(name)
    if isinstance(value, dict):
        value = value.get("rendered")
    return value if isinstance(value, str) else ""


def modified_of(post: dict[str, Any]) -> datetime | None:
    return parse_time(post.get("modified_gmt")) or parse_time(post.get("modified"))


def not_public_reason(post: dict[str, Any]) -> str | None:
    """Why the API's post must not go out, or None when it is public."""
    status = post.get("status", "publish")
    if status != "publish":
        return f"the post is {status} now" if isinstance(status, str) else "the post is not published"
    content = post.get("content")
    if isinstance(content, dict) and content.get("protected"):
        return "the post is password-protected"
    return None


def post_site(post: dict[str, Any], base_url: str) -> str:
    """The site a post id belongs to: from its `?p=ID` guid (as feeds show it), else the source's URL."""
    found = post_id_of(_rendered(post, "guid"))
    if found and found[1] == post.get("id"):
        return found[0]
    return site_of(base_url)


def brief_from_post(post: dict[str, Any], ext: Extraction, base_url: str) -> Brief | None:
    """A Brief from one REST API post (with `_embed`); None when the post is not a brief (a profile).

    Raises NotPublic for a post that must never go out and BadItem for one that cannot be read.
    """
    post_id = post.get("id")
    if not isinstance(post_id, int):
        raise BadItem("no post id")
    reason = not_public_reason(post)
    if reason:
        raise NotPublic(reason)
    url = absolute_url(str(post.get("link") or ""), base_url)
    if not url:
        raise BadItem("no link")
    title = clean_text(_rendered(post, "title"))
    if not title:
        raise BadItem("no title")
    # date_gmt is UTC; `date` is site-local without a zone and is only the fallback.
    published = parse_time(post.get("date_gmt")) or parse_time(post.get("date"))
    if published is None:
        raise BadItem("no publication date")
    modified = modified_of(post) or published
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
        post_id=post_id,
        site=post_site(post, base_url),
        content_rank=RANK_API,
    )


def parse_posts(posts: Sequence[Any], ext: Extraction, base_url: str) -> Harvest:
    """What a list of REST API posts is: briefs, not briefs (skipped), withdrawn and rejected."""
    harvest = Harvest()
    read_posts(posts, ext, base_url, harvest)
    return harvest


def read_posts(posts: Sequence[Any], ext: Extraction, base_url: str, harvest: Harvest) -> None:
    """Add what one answer's posts are to `harvest`: briefs, not briefs, withdrawn, rejected."""
    for post in posts:
        key = str(post.get("id")) if isinstance(post, dict) else "?"
        try:
            if not isinstance(post, dict):
                raise BadItem(f"expected a JSON object, got {type(post).__name__}")
            brief = brief_from_post(post, ext, base_url)
        except NotPublic as exc:
            harvest.withdrawn[key] = str(exc)
            continue
        except BadItem as exc:
            harvest.rejected.append(Rejected(key, str(exc)))
            continue
        except (ValueError, TypeError, etree.LxmlError) as exc:
            # lxml refuses control characters (U+000B, U+001B, U+FFFE...) and some broken markup.
            harvest.rejected.append(Rejected(key, f"unreadable text: {' '.join(str(exc).split())[:160]}"))
            continue
        if brief is None:
            harvest.skipped += 1
        else:
            harvest.briefs.append(brief)


@dataclass
class _Answer:
    posts: list[dict[str, Any]]  # objects with an integer id
    total: int
    bad: list[Any] = field(default_factory=list)  # anything else the list held

    def times(self) -> list[datetime]:
        return [t for t in (modified_of(p) for p in self.posts) if t is not None]


@dataclass
class _Walk:
    """What one run's walk fetched: the posts by id (latest copy), and whether it reached the end."""

    posts: dict[int, dict[str, Any]] = field(default_factory=dict)
    bad: list[Any] = field(default_factory=list)
    requests: int = 0
    complete: bool = True

    def add(self, answer: _Answer) -> None:
        self.bad.extend(answer.bad)
        for post in answer.posts:
            known = self.posts.get(post["id"])
            newer, older = modified_of(post), modified_of(known) if known else None
            if known is None or (newer and (older is None or newer >= older)):
                self.posts[post["id"]] = post


class WordPress:
    def __init__(self, ext: Extraction) -> None:
        self.ext = ext
        self.base = ext.source.url.rstrip("/")

    # -- requests

    def _list(self, fetcher: Fetcher, params: dict[str, Any]) -> _Answer:
        """One answer of the posts endpoint."""
        answer = self._list_if_changed(fetcher, params, conditional=False)
        assert answer is not None  # only a conditional request can answer 304
        return answer

    def _list_if_changed(self, fetcher: Fetcher, params: dict[str, Any], *, conditional: bool) -> _Answer | None:
        """One answer of the posts endpoint; None when `conditional` and the site answered 304."""
        try:
            response = fetcher.get(f"{self.base}{API}/posts", params, accept="application/json",
                                   conditional=conditional)
        except StatusError as exc:
            if exc.status in HIDDEN:
                raise SourceError(self._auth_advice(exc)) from exc
            raise
        if response.not_modified:
            return None
        data = decode_json(response)
        if not isinstance(data, list):
            raise SourceError(f"expected a JSON list of posts, got {type(data).__name__}: {short_url(response.url)}")
        posts = [p for p in data if isinstance(p, dict) and isinstance(p.get("id"), int)]
        # Kept for read_posts to report: an item that is not a post is skipped with its reason.
        bad = [p for p in data if not (isinstance(p, dict) and isinstance(p.get("id"), int))]
        return _Answer(posts=posts, total=_int(response.headers.get("X-WP-Total"), default=len(data)), bad=bad)

    def _auth_advice(self, exc: StatusError) -> str:
        source = self.ext.source
        if source.auth_user:
            return (f"the REST API refused the application password of {source.auth_user!r} "
                    f"({status_reason(exc.status)}): check the password in ${source.auth_password_env} and that "
                    f"the user may read posts: {short_url(exc.url)}")
        return (f"the REST API needs authentication ({status_reason(exc.status)}): create an application password "
                f"for a WordPress user (Users > Profile > Application Passwords), then set auth_user and "
                f"auth_password_env on source {source.name!r} (Basic auth over HTTPS; the password is read from "
                f"that environment variable): {short_url(exc.url)}")

    def _params(self, term_ids: dict[str, list[int]], **extra: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"per_page": self.ext.source.per_page, "page": 1, "_embed": EMBED,
                                  "orderby": "modified", **extra}
        for taxonomy, ids in term_ids.items():
            params[taxonomy] = ",".join(str(i) for i in ids)
        if len(term_ids) == 2:
            # Configured categories and tags each select briefs: a post in either one is wanted.
            params["tax_relation"] = "OR"
        return params

    def _tie(self, fetcher: Fetcher, term_ids: dict[str, list[int]], when: datetime, walk: _Walk) -> None:
        """Every post modified in the second `when`, paged in post-id order (a fixed order)."""
        page = 1
        while True:
            params = self._params(term_ids, modified_after=(when - SECOND).isoformat(),
                                  modified_before=(when + SECOND).isoformat(), orderby="id", order="asc",
                                  per_page=MAX_PER_PAGE, page=page)
            try:
                answer = self._list(fetcher, params)
            except StatusError as exc:
                # rest_post_invalid_page_number: posts left that second while we paged.
                if exc.status == 400 and page > 1:
                    walk.complete = False
                    return
                raise
            walk.requests += 1
            walk.add(answer)
            if page * MAX_PER_PAGE >= answer.total or not answer.posts:
                return
            page += 1

    def _walk(self, fetcher: Fetcher, term_ids: dict[str, list[int]], first: _Answer | None,
              since: datetime | None, walk: _Walk) -> datetime | None:
        """Walk down from the newest (`since` None) or up from `since`; returns the new cursor."""
        source = self.ext.source
        ascending = since is not None
        bound = since - SECOND if since else None
        seen_at_bound: list[int] = []
        answer = first
        cursor = since
        while True:
            if answer is None:
                extra: dict[str, Any] = {}
                if bound:
                    extra["modified_after" if ascending else "modified_before"] = bound.isoformat()
                if seen_at_bound:
                    extra["exclude"] = ",".join(str(i) for i in seen_at_bound)
                answer = self._list(fetcher, self._params(term_ids, order="asc" if ascending else "desc", **extra))
                walk.requests += 1
            walk.add(answer)
            times = answer.times()
            if ascending and times:
                cursor = max(cursor, max(times)) if cursor else max(times)
            if len(answer.posts) < source.per_page or not times:
                return cursor
            if len(walk.posts) >= source.max_items or walk.requests >= source.max_pages:
                # Capped: the next run carries on from here.
                walk.complete = not ascending
                return cursor
            last = times[-1]
            if all(t == last for t in times):
                # A page of one modified time: take that second whole, in id order, and go past it.
                self._tie(fetcher, term_ids, last, walk)
                bound, seen_at_bound = last, []
            else:
                # Ask again from that second, leaving out its posts this page held: the ones it
                # missed come first, then the next seconds.
                bound = last - SECOND if ascending else last + SECOND
                seen_at_bound = [p["id"] for p in answer.posts if modified_of(p) == last]
            answer = None

    # -- the run

    def _terms(self, fetcher: Fetcher, old: dict[str, Any]) -> dict[str, Any]:
        """The configured categories' and tags' ids: looked up at most once per TERMS_TTL, so an
        unchanged site still costs one request."""
        source = self.ext.source
        wanted = {"categories": list(source.categories), "tags": list(source.tags)}
        cached = old.get("terms") or {}
        looked_up = parse_time(cached.get("at"))
        if looked_up and utcnow() - looked_up < TERMS_TTL and cached.get("wanted") == wanted:
            return cached
        ids = {taxonomy: self._term_ids(fetcher, taxonomy, names) for taxonomy, names in wanted.items() if names}
        return {"wanted": wanted, "ids": ids, "at": utcnow().isoformat()}

    def harvest(self, fetcher: Fetcher, memory: Memory) -> Harvest:
        old = memory.walk or {}
        terms = self._terms(fetcher, old)
        term_ids: dict[str, list[int]] = terms["ids"]
        since = parse_time(memory.cursor)
        unchanged = Harvest(walk={**old, "terms": terms})
        # A site that sends validators answers an unchanged newest page with a 304.
        newest = self._list_if_changed(fetcher, self._params(term_ids, order="desc"),
                                       conditional=bool(since and old.get("complete")))
        if newest is None:
            return unchanged
        times = newest.times()
        top = max(times) if times else None
        state = {"total": newest.total,
                 "newest": [top.isoformat(), sum(t == top for t in times)] if top else None, "terms": terms}
        if (since and old.get("complete") and old.get("total") == state["total"]
                and old.get("newest") == state["newest"]):
            return unchanged
        walk = _Walk(requests=1)
        if since is None:
            # Down from the newest: the cursor is the newest page's newest time.
            self._walk(fetcher, term_ids, newest, None, walk)
            cursor = top
        elif len(newest.posts) < self.ext.source.per_page or (times and min(times) < since):
            # The newest page reaches below the cursor: it holds every post changed since.
            walk.add(newest)
            cursor = max([since, *times])
        else:
            cursor = self._walk(fetcher, term_ids, None, since, walk)
        published = parse_time(old.get("published"))
        if since and published:
            # WordPress publishes a scheduled post without moving its modified time, which may be
            # older than the cursor: ask for what was published since the newest publication seen.
            walk.add(self._list(fetcher, self._params(term_ids, orderby="date", order="desc",
                                                      per_page=MAX_PER_PAGE, after=(published - SECOND).isoformat())))
        dates = [t for t in (parse_time(p.get("date_gmt")) for p in walk.posts.values()) if t]
        newest_published = max([*dates, *([published] if published else [])], default=None)
        state["published"] = newest_published.isoformat() if newest_published else None
        harvest = Harvest(cursor=cursor.isoformat() if cursor else None,
                          walk={**state, "complete": walk.complete})
        read_posts([*walk.posts.values(), *walk.bad], self.ext, self.base, harvest)
        seen = {str(i) for i in walk.posts}
        self._retractions(fetcher, sorted(set(memory.recent) - seen, key=_numeric), harvest)
        return harvest

    def _retractions(self, fetcher: Fetcher, keys: list[str], harvest: Harvest) -> None:
        """Withdraw the recent briefs whose posts are no longer public, asking in batches by id."""
        ids = [k for k in keys if k.isdigit()]
        for start in range(0, len(ids), MAX_PER_PAGE):
            batch = ids[start:start + MAX_PER_PAGE]
            answer = self._list(fetcher, {"include": ",".join(batch), "per_page": MAX_PER_PAGE,
                                          "_fields": "id,status,content.protected"})
            public = set()
            for post in answer.posts:
                reason = not_public_reason(post)
                if reason:
                    harvest.withdrawn[str(post.get("id"))] = reason
                else:
                    public.add(str(post.get("id")))
            for key in batch:
                if key not in public and key not in harvest.withdrawn:
                    reason = self._why_missing(fetcher, key)
                    if reason:
                        harvest.withdrawn[key] = reason

    def _why_missing(self, fetcher: Fetcher, key: str) -> str | None:
        """Why a post is missing from the public list, from what WordPress answers for it alone."""
        try:
            response = fetcher.get(f"{self.base}{API}/posts/{key}", {"_fields": "id,status,content.protected"},
                                   accept="application/json")
        except StatusError as exc:
            if exc.status in GONE:
                return f"the post was deleted ({status_reason(exc.status)})"
            if exc.status in HIDDEN:
                return f"the post is no longer public: trashed, unpublished or private ({status_reason(exc.status)})"
            return None
        data = decode_json(response)
        return not_public_reason(data) if isinstance(data, dict) else None

    def _term_ids(self, fetcher: Fetcher, taxonomy: str, wanted: Sequence[str]) -> list[int]:
        slugs = [slugify(w) for w in wanted]
        try:
            response = fetcher.get(
                f"{self.base}{API}/{taxonomy}", {"slug": ",".join(slugs), "per_page": 100, "_fields": "id,slug,name"},
                accept="application/json", keep_body=True,
            )
        except StatusError as exc:
            if exc.status in HIDDEN:
                raise SourceError(self._auth_advice(exc)) from exc
            raise
        data = decode_json(response)
        if not isinstance(data, list):
            raise SourceError(f"expected a JSON list of {taxonomy}: {short_url(response.url)}")
        found = {t.get("slug"): t.get("id") for t in data if isinstance(t, dict)}
        missing = [w for w, s in zip(wanted, slugs) if s not in found]
        if missing:
            raise SourceError(
                f"{taxonomy} {', '.join(repr(m) for m in missing)} not found on the site "
                f"(sources.{self.ext.source.name}.{taxonomy}): {short_url(self.base)}"
            )
        return [int(found[s]) for s in slugs]


def _numeric(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (0, key)


def _int(value: str | None, *, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
