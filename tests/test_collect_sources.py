"""Collecting our fixture publisher (English and Spanish) through each source kind, on both stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from newsletter import briefs
from newsletter.collect import collect_all
from newsletter.config import load
from newsletter.store import schema
from tests.support.configs import base_config, write_config
from tests.support.httpserver import FixtureServer
from tests.support.sites import mount_sites

HEADINGS = ["Crime Briefs Analysis", "Análisis de Crime Briefs"]


def make_config(tmp_path: Path, store_url: str, *sources: dict[str, Any]):
    data = base_config(store_url)
    data["sources"] = [{"language": "en", "analysis_headings": HEADINGS, "timeout_seconds": 5, **s} for s in sources]
    return load(write_config(tmp_path, data))


@pytest.fixture
def site(fixture_server: FixtureServer):
    return mount_sites(fixture_server)


def stored(engine: sa.Engine, source: str) -> dict[str, briefs.Brief]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(schema.briefs).where(schema.briefs.c.source == source)).all()
    return {briefs.from_row(r).url.rsplit("/", 2)[-2]: briefs.from_row(r) for r in rows}


def test_wordpress_english_pages_through_the_api_and_extracts_briefs(tmp_path, engine, fixture_server, site):
    config = make_config(tmp_path, "sqlite:///unused", {"name": "wp-en", "kind": "wordpress", "url": fixture_server.url,
                                                          "per_page": 2})
    [result] = collect_all(config, engine)
    assert result.error is None
    # Six posts, one of them a profile: five briefs, walked two at a time down the modified times
    # (each request starts from the last time seen, never from a page number).
    assert (result.new, result.updated, result.unchanged) == (5, 0, 0)
    queries = [parse_qs(urlsplit(r.path).query) for r in fixture_server.requests_to("/wp-json/wp/v2/posts")]
    assert len(queries) > 3 and all(q["page"] == ["1"] for q in queries)
    assert all("modified_before" in q for q in queries[1:])
    got = stored(engine, "wp-en")
    assert "el-contador-alias" not in got
    river = got["river-port-seizure-exposes-cocaine-route"]
    assert river.key == "101"
    assert river.authors == ("Ana Ruiz", "Tom Hale")
    assert river.countries == ("colombia",)
    assert river.tags == ("Brief", "Cocaine", "Ports")
    assert river.image_url == f"{fixture_server.url}/wp-content/uploads/2026/10/river-port.jpg"
    assert "two tons of cocaine" in river.lede and "back door" not in river.lede
    assert "back door of the cocaine trade" in river.analysis
    # Relative links made absolute; furniture gone.
    assert f'href="{fixture_server.url}/investigations/ports/"' in river.lede
    for furniture in ("SEE ALSO", "Share this", "appeared first on"):
        assert furniture not in river.lede + river.analysis
    assert river.published_at.isoformat() == "2026-10-01T14:00:00+00:00"
    assert river.modified_at.isoformat() == "2026-10-01T15:30:00+00:00"
    salvador = got["gang-truce-frays-in-san-salvador-suburbs"]
    assert salvador.title == "Gang Truce Frays in San Salvador\u2019s Suburbs"
    assert salvador.countries == ("el-salvador",)
    # A heading in another case and spacing still starts the analysis.
    assert "rent collectors came back first" in salvador.analysis
    assert "\u201crent\u201d" in salvador.lede and "&amp; confirmed" in salvador.lede
    for hostile in ("<script", "onclick", "javascript:"):
        assert hostile not in salvador.lede + salvador.analysis
    # No heading: the analysis is empty and the whole body is the lede.
    port = got["port-workers-charged-in-santo-domingo"]
    assert port.analysis == "" and "refrigerated containers" in port.lede
    assert port.countries == ("dominican-republic",)
    lima = got["lima-extortion-wave-reaches-markets"]
    assert lima.authors == ("Ana Ruiz", "Lucía Marín", "Tom Hale")
    assert "Related Content" not in lima.analysis and "Another story" not in lima.analysis


def test_wordpress_spanish_site_with_accented_countries(tmp_path, engine, fixture_server, site):
    config = make_config(tmp_path, "sqlite:///unused", {"name": "wp-es", "kind": "wordpress", "language": "es",
                                                          "url": fixture_server.url + "/es"})
    [result] = collect_all(config, engine)
    assert (result.error, result.new) == (None, 3)
    got = stored(engine, "wp-es")
    oro = got["mineria-ilegal-avanza-en-madre-de-dios"]
    assert oro.language == "es"
    assert oro.authors == ("Carmen Soto", "Diego Paz")
    assert oro.countries == ("peru",) and "Minería ilegal" in oro.tags
    assert "quienes compran el oro" in oro.analysis and "VER TAMBIÉN" not in oro.lede
    banano = got["cocaina-en-contenedores-de-banano"]
    assert banano.countries == ("dominican-republic", "mexico")
    # A bold paragraph is a heading too.
    assert "carga preferida" in banano.analysis and "Análisis" not in banano.lede
    assert got["pandillas-controlan-rutas-en-puerto-principe"].countries == ("haiti",)


def test_wordpress_restricted_to_configured_categories_and_tags(tmp_path, engine, fixture_server, site):
    config = make_config(tmp_path, "sqlite:///unused", {"name": "wp-en", "kind": "wordpress", "url": fixture_server.url,
                                                          "categories": ["Brief"], "tags": ["ports"]})
    [result] = collect_all(config, engine)
    assert result.error is None
    posts = fixture_server.requests_to("/wp-json/wp/v2/posts")[0].path
    assert "categories=1" in posts and "tags=19" in posts and "tax_relation=OR" in posts
    assert result.new == 5


def test_unknown_category_is_a_clear_error(tmp_path, engine, fixture_server, site):
    config = make_config(tmp_path, "sqlite:///unused", {"name": "wp-en", "kind": "wordpress", "url": fixture_server.url,
                                                          "categories": ["Obituaries"]})
    [result] = collect_all(config, engine)
    assert "categories 'Obituaries' not found" in result.error


def test_rss_feed_with_two_authors_and_country_categories(tmp_path, engine, fixture_server, site):
    config = make_config(tmp_path, "sqlite:///unused", {"name": "rss-en", "kind": "feed", "url": fixture_server.url + "/feed/"})
    [result] = collect_all(config, engine)
    assert (result.error, result.new) == (None, 5)
    river = stored(engine, "rss-en")["river-port-seizure-exposes-cocaine-route"]
    assert river.key == f"{fixture_server.url}/?p=101"
    assert river.authors == ("Ana Ruiz", "Tom Hale")
    assert river.countries == ("colombia",)
    assert "back door" in river.analysis and "two tons" in river.lede
    # The feed's "<p><a href=link>Title</a></p>" preamble is not part of the brief.
    assert "River Port Seizure Exposes" not in river.lede


def test_atom_feed_in_spanish(tmp_path, engine, fixture_server, site):
    config = make_config(tmp_path, "sqlite:///unused", {"name": "atom-es", "kind": "feed", "language": "es",
                                                          "url": fixture_server.url + "/es/feed/atom/"})
    [result] = collect_all(config, engine)
    assert (result.error, result.new) == (None, 3)
    oro = stored(engine, "atom-es")["mineria-ilegal-avanza-en-madre-de-dios"]
    assert oro.authors == ("Carmen Soto", "Diego Paz")
    assert oro.published_at.isoformat() == "2026-10-01T13:00:00+00:00"
    assert f'href="{fixture_server.url}/es/tag/mineria-ilegal/"' not in oro.lede  # the VER TAMBIÉN promo is gone
    assert "quienes compran el oro" in oro.analysis


def test_article_pages_from_a_listing(tmp_path, engine, fixture_server, site):
    config = make_config(tmp_path, "sqlite:///unused", {"name": "pages-en", "kind": "pages", "url": fixture_server.url,
                                                          "listing_url": fixture_server.url + "/news/"})
    [result] = collect_all(config, engine)
    assert (result.error, result.new) == (None, 5)
    got = stored(engine, "pages-en")
    river = got["river-port-seizure-exposes-cocaine-route"]
    assert river.key == river.url == f"{fixture_server.url}/news/river-port-seizure-exposes-cocaine-route/"
    assert river.title == "River Port Seizure Exposes Cocaine Route"
    assert river.authors == ("Ana Ruiz", "Tom Hale")
    assert river.image_url.endswith("/wp-content/uploads/2026/10/river-port.jpg")
    assert "two tons" in river.lede and "back door" in river.analysis
    page_text = river.lede + river.analysis
    for furniture in ("Was this content helpful", "Related Content", "Donate", "What are your thoughts", "BRIEF",
                      "Share", "analytics"):
        assert furniture not in page_text
