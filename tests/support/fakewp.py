"""A WordPress REST API of our own that breaks ties as MariaDB does: in no fixed order.

For what a real WordPress cannot be made to do on demand (a shuffled tie on every request,
a post appearing between two requests, a control character in a post's text), served by
`FixtureServer`. It answers /wp-json/wp/v2/posts with per_page, page, orderby (modified,
id, date), order, modified_after/modified_before (exclusive, to the second), include, exclude,
after (published), status (public posts only), X-WP-Total(Pages), 400 `rest_post_invalid_page_number` past
the end; and /wp-json/wp/v2/posts/<id>: 404 when missing, 401 when not public.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from tests.support.httpserver import FixtureServer, Reply, Request

BODY = ("<p>Police seized two tons of cocaine in the port of {n}.</p><h2>Crime Briefs Analysis</h2>"
        "<p>The route matters because of {n}.</p>")


def _when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _gmt(value: datetime) -> str:
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat()


class FakeWordPress:
    def __init__(self, server: FixtureServer, prefix: str = "/wp") -> None:
        self.server = server
        self.prefix = prefix
        self.url = server.url + prefix
        self.posts: dict[int, dict[str, Any]] = {}
        self.next_id = 100
        self.random = random.Random(7)
        # Run before answering the n-th request to the posts list (1-based), once each.
        self.hooks: dict[int, Callable[[], None]] = {}
        self.list_requests = 0
        server.mounts.append(self.answer)

    # -- the publisher's side

    def publish(self, count: int, *, at: datetime, title: str = "Story {n}", **fields: Any) -> list[int]:
        """`count` posts with one published and modified time (a bulk publish)."""
        ids = []
        for _ in range(count):
            n = self.next_id
            self.next_id += 1
            self.posts[n] = {
                "id": n, "status": "publish", "date_gmt": _gmt(at), "modified_gmt": _gmt(at),
                "link": f"{self.server.url}/news/story-{n}/", "guid": {"rendered": f"{self.server.url}/?p={n}"},
                "title": {"rendered": title.format(n=n)}, "content": {"rendered": BODY.format(n=n), "protected": False},
                "excerpt": {"rendered": ""},
                "_embedded": {"author": [{"name": "Ana Ruiz"}], "wp:term": [[{"name": "Colombia"}]]},
            }
            self.posts[n].update(fields)
            ids.append(n)
        return ids

    def edit(self, ids: list[int], *, at: datetime, **fields: Any) -> None:
        for i in ids:
            self.posts[i].update(fields, modified_gmt=_gmt(at))

    # -- the API

    def _public(self, post: dict[str, Any]) -> bool:
        return post["status"] == "publish"

    def answer(self, request: Request) -> Reply | None:
        parts = urlsplit(request.path)
        if not parts.path.startswith(self.prefix + "/wp-json/wp/v2/posts"):
            return None
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        rest = parts.path[len(self.prefix + "/wp-json/wp/v2/posts"):]
        if rest.strip("/"):
            post = self.posts.get(int(rest.strip("/")))
            if post is None:
                return _json({"code": "rest_post_invalid_id", "data": {"status": 404}}, 404)
            if not self._public(post):
                return _json({"code": "rest_forbidden", "data": {"status": 401}}, 401)
            return _json(post, 200)
        self.list_requests += 1
        hook = self.hooks.pop(self.list_requests, None)
        if hook:
            hook()
        selected = [p for p in self.posts.values() if self._public(p)]
        if "include" in query:
            wanted = {int(i) for i in query["include"].split(",")}
            selected = [p for p in selected if p["id"] in wanted]
        if "exclude" in query:
            unwanted = {int(i) for i in query["exclude"].split(",")}
            selected = [p for p in selected if p["id"] not in unwanted]
        if "modified_after" in query:
            after = _when(query["modified_after"]).replace(microsecond=0)
            selected = [p for p in selected if _when(p["modified_gmt"]) > after]
        if "after" in query:
            published_after = _when(query["after"]).replace(microsecond=0)
            selected = [p for p in selected if p["date_gmt"] and _when(p["date_gmt"]) > published_after]
        if "modified_before" in query:
            before = _when(query["modified_before"]).replace(microsecond=0)
            selected = [p for p in selected if _when(p["modified_gmt"]) < before]
        key = {"modified": "modified_gmt", "id": "id"}.get(query.get("orderby", ""), "date_gmt")
        # MariaDB: equal keys come back in any order, a new one on every query.
        self.random.shuffle(selected)
        selected.sort(key=lambda p: p[key] or "", reverse=query.get("order", "desc") == "desc")
        per_page = int(query.get("per_page", 10))
        page = int(query.get("page", 1))
        pages = max(1, -(-len(selected) // per_page))
        if page > pages:
            return _json({"code": "rest_post_invalid_page_number", "data": {"status": 400}}, 400)
        chunk = selected[(page - 1) * per_page: page * per_page]
        return _json(chunk, 200, {"X-WP-Total": str(len(selected)), "X-WP-TotalPages": str(pages)})


def _json(data: Any, status: int, headers: dict[str, str] | None = None) -> Reply:
    return Reply(json.dumps(data), status=status, headers=headers or {},
                 content_type="application/json; charset=UTF-8")


def hours_ago(hours: float) -> datetime:
    return (datetime.now(timezone.utc) - timedelta(hours=hours)).replace(microsecond=0)
