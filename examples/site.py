#!/usr/bin/env python3
"""A small publisher site of our own, served three ways on 127.0.0.1 (standard library only).

Each language is a WordPress-like site under its own prefix ("" for English, "/es" for
Spanish), built from a JSON file of REST API posts (with `_embed`):

    {prefix}/wp-json/wp/v2/posts          per_page, page, modified_after, modified_before, after, include, exclude,
                                           categories, tags, orderby=modified|id, order;
                                           X-WP-Total(Pages); ETag/304; public posts only
    {prefix}/wp-json/wp/v2/posts/<id>     one post; 404 when missing, 401 when not public
    {prefix}/wp-json/wp/v2/categories      ?slug=a,b        (and /tags)
    {prefix}/feed/                         RSS 2.0 with content:encoded and dc:creator
    {prefix}/feed/atom/                    Atom 1.0
    {prefix}/news/                         a listing page linking to the article pages
    {prefix}/<the post's path>             the article page, with the usual furniture around it

Run: python3 examples/site.py [--port 8765] [--posts examples/site]. The tests import the
pure `Site.answer` function and serve the same shapes from their own fixture posts.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]


def _gmt(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)


class Site:
    """One language's site: posts from a JSON file in which "{site}" stands for the site's base URL."""

    def __init__(self, posts: list[dict], *, prefix: str, language: str, name: str) -> None:
        self.raw = posts
        self.prefix = prefix
        self.language = language
        self.name = name

    @classmethod
    def load(cls, path: Path, *, prefix: str, language: str, name: str) -> "Site":
        return cls(json.loads(path.read_text(encoding="utf-8")), prefix=prefix, language=language, name=name)

    def posts(self, base: str) -> list[dict]:
        site = base + self.prefix
        return json.loads(json.dumps(self.raw).replace("{site}", site))

    def answer(self, path_and_query: str, base: str, headers: dict[str, str]) -> Answer | None:
        """The site's answer to a GET, or None when the path is not this site's."""
        parts = urlsplit(path_and_query)
        path = parts.path
        if not path.startswith(self.prefix + "/"):
            return None
        local = path[len(self.prefix):]
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        posts = self.posts(base)
        site = base + self.prefix
        if local == "/wp-json/wp/v2/posts":
            return self._conditional(self._posts(posts, query), headers)
        if local.startswith("/wp-json/wp/v2/posts/"):
            return self._post(posts, local.rsplit("/", 1)[-1])
        if local in ("/wp-json/wp/v2/categories", "/wp-json/wp/v2/tags"):
            taxonomy = "category" if local.endswith("categories") else "post_tag"
            return self._conditional(self._terms(posts, taxonomy, query), headers)
        if local == "/feed/":
            return self._conditional(Answer(200, "application/rss+xml; charset=UTF-8", rss(posts, site, self), {}), headers)
        if local == "/feed/atom/":
            return self._conditional(Answer(200, "application/atom+xml; charset=UTF-8", atom(posts, site, self), {}), headers)
        if local == "/news/":
            return self._conditional(Answer(200, "text/html; charset=UTF-8", listing(posts, site, self), {}), headers)
        for post in posts:
            if urlsplit(post["link"]).path == path:
                return self._conditional(Answer(200, "text/html; charset=UTF-8", article(post, site, self), {}), headers)
        return None

    @staticmethod
    def _conditional(answer: Answer, headers: dict[str, str]) -> Answer:
        if answer.status != 200:
            return answer
        etag = '"' + hashlib.sha256(answer.body).hexdigest()[:20] + '"'
        answer.headers["ETag"] = etag
        if headers.get("if-none-match") == etag:
            return Answer(304, answer.content_type, b"", {"ETag": etag})
        return answer

    @staticmethod
    def _public(post: dict) -> bool:
        return post.get("status", "publish") == "publish"

    def _post(self, posts: list[dict], post_id: str) -> Answer:
        """One post by id: 404 when there is none, 401 when it is not public (as WordPress answers)."""
        found = next((p for p in posts if str(p["id"]) == post_id), None)
        if found is None or not self._public(found):
            status, code = (404, "rest_post_invalid_id") if found is None else (401, "rest_forbidden")
            body = {"code": code, "message": "Sorry.", "data": {"status": status}}
            return Answer(status, "application/json; charset=UTF-8", json.dumps(body).encode(), {})
        return Answer(200, "application/json; charset=UTF-8", json.dumps(found).encode(), {})

    def _posts(self, posts: list[dict], query: dict[str, str]) -> Answer:
        selected = [p for p in posts if self._public(p)]
        if "include" in query:
            ids = {int(i) for i in query["include"].split(",")}
            selected = [p for p in selected if p["id"] in ids]
        if "exclude" in query:
            ids = {int(i) for i in query["exclude"].split(",")}
            selected = [p for p in selected if p["id"] not in ids]
        if "modified_after" in query:
            after = _gmt(query["modified_after"])
            selected = [p for p in selected if _gmt(p["modified_gmt"]) > after]
        if "after" in query:
            published_after = _gmt(query["after"])
            selected = [p for p in selected if _gmt(p["date_gmt"]) > published_after]
        if "modified_before" in query:
            before = _gmt(query["modified_before"])
            selected = [p for p in selected if _gmt(p["modified_gmt"]) < before]
        wanted = {t: {int(i) for i in query[t].split(",")} for t in ("categories", "tags") if t in query}
        if wanted:
            matches = [any(set(p.get(t, [])) & ids for t, ids in wanted.items()) if query.get("tax_relation") == "OR"
                       else all(set(p.get(t, [])) & ids for t, ids in wanted.items()) for p in selected]
            selected = [p for p, ok in zip(selected, matches) if ok]
        key = {"modified": "modified_gmt", "id": "id"}.get(query.get("orderby", ""), "date_gmt")
        selected = sorted(selected, key=lambda p: p[key], reverse=query.get("order", "desc") == "desc")
        per_page = int(query.get("per_page", 10))
        page = int(query.get("page", 1))
        total_pages = max(1, -(-len(selected) // per_page))
        if page > total_pages:
            body = {"code": "rest_post_invalid_page_number", "message": "The page number requested is larger than the number of pages available.", "data": {"status": 400}}
            return Answer(400, "application/json; charset=UTF-8", json.dumps(body).encode(), {})
        chunk = selected[(page - 1) * per_page: page * per_page]
        if "_embed" not in query:
            chunk = [{k: v for k, v in p.items() if k != "_embedded"} for p in chunk]
        headers = {"X-WP-Total": str(len(selected)), "X-WP-TotalPages": str(total_pages)}
        return Answer(200, "application/json; charset=UTF-8", json.dumps(chunk).encode(), headers)

    def _terms(self, posts: list[dict], taxonomy: str, query: dict[str, str]) -> Answer:
        terms: dict[int, dict] = {}
        for post in posts:
            for group in post.get("_embedded", {}).get("wp:term", []):
                for term in group:
                    if term["taxonomy"] == taxonomy:
                        terms[term["id"]] = {"id": term["id"], "name": term["name"], "slug": term["slug"]}
        slugs = set(query["slug"].split(",")) if "slug" in query else None
        found = [t for t in terms.values() if slugs is None or t["slug"] in slugs]
        return Answer(200, "application/json; charset=UTF-8", json.dumps(found).encode(), {})


def _authors(post: dict) -> str:
    return ", ".join(a["name"] for a in post["_embedded"]["author"])


def _terms_of(post: dict) -> list[str]:
    return [t["name"] for group in post["_embedded"].get("wp:term", []) for t in group]


def _image(post: dict) -> str:
    media = post["_embedded"].get("wp:featuredmedia") or []
    return media[0]["source_url"] if media else ""


def rss(posts: list[dict], site: str, s: Site) -> bytes:
    items = []
    for p in sorted(posts, key=lambda p: p["date_gmt"], reverse=True):
        title = p["title"]["rendered"]
        date = format_datetime(_gmt(p["date_gmt"]))
        categories = "".join(f"\n\t\t<category><![CDATA[{html.unescape(t)}]]></category>" for t in _terms_of(p))
        teaser = (f'<p><a href="{p["link"]}">{title}</a></p>\n{p["excerpt"]["rendered"]}'
                  f'<p>The post <a href="{p["link"]}">{title}</a> appeared first on <a href="{site}">{s.name}</a>.</p>')
        content = f'<p><a href="{p["link"]}">{title}</a></p>\n{p["content"]["rendered"]}'
        items.append(f"""	<item>
		<title>{title}</title>
		<link>{p["link"]}</link>
		<dc:creator><![CDATA[{_authors(p)}]]></dc:creator>
		<pubDate>{date}</pubDate>{categories}
		<guid isPermaLink="false">{site}/?p={p["id"]}</guid>
		<description><![CDATA[{teaser}]]></description>
		<content:encoded><![CDATA[{content}]]></content:encoded>
	</item>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"
	xmlns:content="http://purl.org/rss/1.0/modules/content/"
	xmlns:dc="http://purl.org/dc/elements/1.1/"
	xmlns:atom="http://www.w3.org/2005/Atom">
<channel>
	<title>{s.name}</title>
	<atom:link href="{site}/feed/" rel="self" type="application/rss+xml" />
	<link>{site}/</link>
	<description>Briefs on organised crime</description>
	<language>{s.language}</language>
{chr(10).join(items)}
</channel>
</rss>
""".encode("utf-8")


def atom(posts: list[dict], site: str, s: Site) -> bytes:
    entries = []
    updated = max((p["modified_gmt"] for p in posts), default="2026-01-01T00:00:00")
    for p in posts:
        authors = "".join(f"<author><name>{html.escape(a['name'])}</name></author>" for a in p["_embedded"]["author"])
        categories = "".join(f'<category term="{html.escape(html.unescape(t), quote=True)}"/>' for t in _terms_of(p))
        entries.append(f"""  <entry>
    <title type="html">{html.escape(p["title"]["rendered"])}</title>
    <link rel="alternate" type="text/html" href="{p["link"]}"/>
    <id>{site}/?p={p["id"]}</id>
    <published>{p["date_gmt"]}Z</published>
    <updated>{p["modified_gmt"]}Z</updated>
    {authors}{categories}
    <summary type="html">{html.escape(p["excerpt"]["rendered"])}</summary>
    <content type="html" xml:base="{p["link"]}">{html.escape(p["content"]["rendered"])}</content>
  </entry>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{s.language}">
  <title>{s.name}</title>
  <id>{site}/</id>
  <link rel="self" href="{site}/feed/atom/"/>
  <link rel="alternate" href="{site}/"/>
  <updated>{updated}Z</updated>
{chr(10).join(entries)}
</feed>
""".encode("utf-8")


def _page(title: str, head: str, main: str, s: Site, site: str) -> bytes:
    donate, comments = (("Donar", "¿Qué opinas? Haz clic aquí para enviarnos tus comentarios.") if s.language == "es"
                        else ("Donate", "What are your thoughts? Click here to send us your comments."))
    return f"""<!DOCTYPE html>
<html lang="{s.language}"><head><meta charset="utf-8"><title>{title} - {s.name}</title>{head}
<script>window.analytics = {{"page": "{s.language}"}};</script></head>
<body><header class="site-header"><a href="{site}/">{s.name}</a>
<nav><a href="{site}/news/">News</a> <a href="{site}/tag/colombia/">Colombia</a> <a href="{site}/donate/">{donate}</a></nav></header>
{main}
<aside class="donate-appeal"><p>Was this content helpful?</p><p><a href="{site}/donate/">{donate}</a></p></aside>
<footer class="site-footer"><p>{comments}</p><p>&copy; {s.name}</p></footer>
</body></html>
""".encode("utf-8")


def listing(posts: list[dict], site: str, s: Site) -> bytes:
    cards = "".join(
        f'<li><a href="{p["link"]}">{p["title"]["rendered"]}</a> <a href="{p["link"]}#comments">comments</a></li>'
        for p in sorted(posts, key=lambda p: p["date_gmt"], reverse=True)
    )
    main = f'<main><h1>News</h1><ul class="cards">{cards}</ul><a href="{site}/news/page/2/">Older</a></main>'
    return _page("News", "", main, s, site)


def article(post: dict, site: str, s: Site) -> bytes:
    title = post["title"]["rendered"]
    terms = _terms_of(post)
    tags = "".join(f'<meta property="article:tag" content="{html.escape(html.unescape(t), quote=True)}">' for t in terms)
    image = _image(post)
    head = (f'<link rel="canonical" href="{post["link"]}"><meta property="og:url" content="{post["link"]}">'
            f'<meta property="og:title" content="{html.escape(html.unescape(title), quote=True)}">'
            f'<meta property="og:image" content="{image}">'
            f'<meta property="article:published_time" content="{post["date_gmt"]}+00:00">'
            f'<meta property="article:modified_time" content="{post["modified_gmt"]}+00:00">'
            f'<meta name="author" content="{html.escape(_authors(post), quote=True)}">{tags}')
    country = next((t for t in terms), "NEWS").upper()
    day = _gmt(post["date_gmt"]).strftime("%-d %b %Y").upper()
    by = "POR" if s.language == "es" else "BY"
    main = f"""<main><article>
<p class="breadcrumb"><a href="{site}/">Home</a> / <a href="{site}/news/">News</a></p>
<p class="kicker">BRIEF</p>
<h1>{title}</h1>
<p class="dateline">{html.escape(country)} / {day} {by} {html.escape(_authors(post).upper())}</p>
<div class="share-bar"><a href="https://twitter.com/share?url={post['link']}">Share</a></div>
<div class="entry-content">
{post["content"]["rendered"]}
</div>
<section class="related-content"><h2>Related Content</h2><p><a href="{site}/news/">More briefs</a></p></section>
</article></main>"""
    return _page(html.unescape(title), head, main, s, site)


def sites(folder: Path) -> list[Site]:
    return [
        Site.load(folder / "posts_en.json", prefix="", language="en", name="Crime Briefs Example"),
        Site.load(folder / "posts_es.json", prefix="/es", language="es", name="Crime Briefs Ejemplo"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--posts", type=Path, default=HERE / "site", help="folder with posts_en.json and posts_es.json")
    args = parser.parse_args(argv)
    served = sites(args.posts)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            headers = {k.lower(): v for k, v in self.headers.items()}
            # Longest prefix first, so /es/... is the Spanish site's and not an English 404.
            for site in sorted(served, key=lambda s: -len(s.prefix)):
                found = site.answer(self.path, base, headers)
                if found:
                    break
            else:
                found = Answer(404, "text/plain", b"not found", {})
            self.send_response(found.status)
            self.send_header("Content-Type", found.content_type)
            self.send_header("Content-Length", str(len(found.body)))
            for k, v in found.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(found.body)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"example site on http://127.0.0.1:{server.server_address[1]}/ (Spanish under /es/)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
