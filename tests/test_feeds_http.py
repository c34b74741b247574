"""Feeds over HTTP as readers and caches use them: content type, validators, 304, gzip, HEAD."""

from __future__ import annotations

import gzip
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from newsletter import feeds
from newsletter.store import open_store
from newsletter.web.app import create_app
from newsletter.web.feeds import accepts_gzip
from tests.support.feeds import sample, site_config, store
from tests.support.serve import Served, free_port

IDENTITY = {"Accept-Encoding": "identity"}


@pytest.fixture
def config(tmp_path: Path, sqlite_url: str):
    return site_config(tmp_path, sqlite_url)


@pytest.fixture
def engine(config) -> Iterator[sa.Engine]:
    eng = open_store(config.store_url)
    store(eng, sample(1), sample(2, countries=("mexico",)))
    yield eng
    eng.dispose()


@pytest.fixture
def client(config, engine) -> Iterator[TestClient]:
    feeds.build_all(config, engine)
    with TestClient(create_app(config, engine)) as c:
        yield c


def test_feed_is_served_as_atom_with_strong_validators(client: TestClient, config) -> None:
    response = client.get("/feeds/en.atom", headers=IDENTITY)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert response.content == (config.resolve("public/feeds") / "en.atom").read_bytes()
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert parsedate_to_datetime(response.headers["last-modified"]).tzinfo is not None
    assert response.headers["vary"] == "Accept-Encoding"
    assert "content-encoding" not in response.headers
    assert client.get("/feeds/en/mexico.atom").status_code == 200


def test_if_none_match_gives_304_without_a_body(client: TestClient) -> None:
    first = client.get("/feeds/en.atom", headers=IDENTITY)
    again = client.get("/feeds/en.atom", headers={**IDENTITY, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    listed = client.get("/feeds/en.atom", headers={**IDENTITY, "If-None-Match": f'"other", W/{first.headers["etag"]}'})
    assert listed.status_code == 304
    stale = client.get("/feeds/en.atom", headers={**IDENTITY, "If-None-Match": '"stale"'})
    assert stale.status_code == 200 and stale.content == first.content


def test_if_modified_since_gives_304_until_the_feed_changes(client: TestClient, config, engine) -> None:
    first = client.get("/feeds/en.atom", headers=IDENTITY)
    since = first.headers["last-modified"]
    assert client.get("/feeds/en.atom", headers={"If-Modified-Since": since}).status_code == 304
    earlier = formatdate(parsedate_to_datetime(since).timestamp() - 3600, usegmt=True)
    assert client.get("/feeds/en.atom", headers={"If-Modified-Since": earlier}).status_code == 200
    assert client.get("/feeds/en.atom", headers={"If-Modified-Since": "not a date"}).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3).
    both = client.get("/feeds/en.atom", headers={"If-Modified-Since": since, "If-None-Match": '"stale"'})
    assert both.status_code == 200


def test_a_changed_feed_gets_a_new_etag(client: TestClient, config, engine) -> None:
    first = client.get("/feeds/en.atom", headers=IDENTITY)
    store(engine, sample(3, title="A new brief"))
    feeds.build_all(config, engine)
    again = client.get("/feeds/en.atom", headers={**IDENTITY, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 200 and b"A new brief" in again.content
    assert again.headers["etag"] != first.headers["etag"]


def test_gzip_when_asked_with_its_own_etag(client: TestClient) -> None:
    plain = client.get("/feeds/en.atom", headers=IDENTITY)
    with client.stream("GET", "/feeds/en.atom", headers={"Accept-Encoding": "gzip, deflate"}) as zipped:
        raw = b"".join(zipped.iter_raw())
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) == len(raw) < len(plain.content)
    assert gzip.decompress(raw) == plain.content
    assert zipped.headers["etag"] != plain.headers["etag"]
    not_modified = client.get("/feeds/en.atom", headers={"Accept-Encoding": "gzip",
                                                         "If-None-Match": zipped.headers["etag"]})
    assert not_modified.status_code == 304
    # The identity ETag does not validate the gzip representation.
    assert client.get("/feeds/en.atom", headers={"Accept-Encoding": "gzip",
                                                 "If-None-Match": plain.headers["etag"]}).status_code == 200


@pytest.mark.parametrize(
    "header, expected",
    [("gzip", True), ("br, gzip;q=0.5", True), ("*", True), ("gzip;q=0", False), ("identity", False),
     ("", False), ("*;q=0, gzip;q=0.1", True), ("deflate, *;q=0", False), ("GZIP", True)],
)
def test_accept_encoding_is_read_with_q_values(header: str, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_head_answers_headers_only(client: TestClient) -> None:
    get = client.get("/feeds/en.atom", headers=IDENTITY)
    head = client.head("/feeds/en.atom", headers=IDENTITY)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(get.content))
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["content-type"] == "application/atom+xml; charset=utf-8"


def test_unknown_and_malformed_feed_paths_are_404(client: TestClient) -> None:
    assert client.get("/feeds/fr.atom").status_code == 404
    assert client.get("/feeds/en/atlantis.atom").status_code == 404
    assert client.get("/feeds/../config.toml").status_code == 404
    assert client.get("/feeds/en/%2e%2e/%2e%2e/config.toml").status_code == 404
    assert client.get("/feeds/en.xml").status_code == 404
    assert client.post("/feeds/en.atom").status_code == 405


def test_archive_pages_are_served(tmp_path: Path, sqlite_url: str) -> None:
    config = site_config(tmp_path, sqlite_url, entries=1, archive_size=2)
    engine = open_store(config.store_url)
    store(engine, *(sample(n) for n in range(5)))
    feeds.build_all(config, engine)
    with TestClient(create_app(config, engine)) as client:
        for path in ("en/archive/1.atom", "en/archive/2.atom", "en/colombia/archive/2.atom"):
            response = client.get(f"/feeds/{path}")
            assert response.status_code == 200 and b"<fh:archive/>" in response.content, path
        assert client.get("/feeds/en/archive/3.atom").status_code == 404
    engine.dispose()


def test_a_missing_feed_file_is_built_on_demand(config, engine) -> None:
    path = config.resolve("public/feeds") / "en" / "mexico.atom"
    assert not path.exists()
    with TestClient(create_app(config, engine)) as client:
        response = client.get("/feeds/en/mexico.atom")
    assert response.status_code == 200 and path.exists()
    assert b"Brief number 2" in response.content


def test_the_real_server_answers_200_304_and_gzip(config, engine) -> None:
    feeds.build_all(config, engine)
    served = Served(config.path, free_port())
    try:
        url = f"{served.url}/feeds/en/colombia.atom"
        with httpx.Client(timeout=10) as http:
            first = http.get(url, headers=IDENTITY)
            assert first.status_code == 200
            assert first.headers["content-type"] == "application/atom+xml; charset=utf-8"
            assert b"Brief number 1" in first.content
            again = http.get(url, headers={**IDENTITY, "If-None-Match": first.headers["etag"]})
            assert again.status_code == 304 and again.content == b""
            zipped = http.get(url, headers={"Accept-Encoding": "gzip"})
            assert zipped.headers["content-encoding"] == "gzip"
            assert zipped.content == first.content  # httpx decodes it
            head = http.head(url, headers=IDENTITY)
            assert head.status_code == 200 and head.headers["content-length"] == str(len(first.content))
    finally:
        served.stop()
