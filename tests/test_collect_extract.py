"""The pure parsing rules: bylines, Retry-After, briefs versus profiles, entity refusal, links, article pages."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from newsletter.collect.extract import BodyRules, is_brief, refuse_entity_declarations, split_authors, split_body
from newsletter.collect.http import retry_after_seconds
from newsletter.collect.pages import article_links, parse_article
from newsletter.collect.source import Extraction
from newsletter.config import SourceConfig
from newsletter.countries import Countries
from newsletter.errors import SourceError


@pytest.mark.parametrize("byline, authors", [
    ("Deborah Ruiz and Jeremy Hale", ("Deborah Ruiz", "Jeremy Hale")),
    ("A. One, B. Two and C. Three", ("A. One", "B. Two", "C. Three")),
    ("A. One, B. Two, and C. Three", ("A. One", "B. Two", "C. Three")),
    ("Carmen Soto y Diego Paz", ("Carmen Soto", "Diego Paz")),
    ("By Ann Lee & Bo Kim", ("Ann Lee", "Bo Kim")),
    ("Por María Pérez", ("María Pérez",)),
    ("Crime Briefs", ("Crime Briefs",)),
    ("Ann Lee and Ann Lee", ("Ann Lee",)),
])
def test_bylines_name_each_author(byline, authors):
    assert split_authors(byline) == authors


def test_retry_after_in_seconds_or_as_a_date():
    now = datetime(2026, 10, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("7", now) == 7
    assert retry_after_seconds("Thu, 01 Oct 2026 12:00:30 GMT", now) == 30
    assert retry_after_seconds("Thu, 01 Oct 2026 11:00:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


@pytest.mark.parametrize("url, tags, brief", [
    ("https://insightcrime.org/news/brief/colombia-captures-x/", ["Colombia"], True),
    ("https://insightcrime.org/news/colombias-emc-holds-x/", ["Colombia Groups"], True),
    ("https://insightcrime.org/mexico-organized-crime-news/some-alias/", ["Mexico"], False),
    ("https://es.insightcrime.org/noticias-crimen-organizado-colombia/eln/", [], False),
    ("https://example.org/2026/10/01/a-story/", ["Mexico Personalities"], False),
])
def test_profiles_are_not_briefs(url, tags, brief):
    assert is_brief(url, tags) is brief


@pytest.mark.parametrize("document", [
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><rss/>',
    b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "file:///etc/passwd"><rss>&x;</rss><!ENTITY x SYSTEM "f">',
])
def test_documents_declaring_entities_are_refused(document):
    with pytest.raises(SourceError, match="declares entities"):
        refuse_entity_declarations(document, "http://x/feed")


def test_a_plain_doctype_is_fine():
    refuse_entity_declarations(b'<?xml version="1.0"?><!DOCTYPE rss><rss version="2.0"/>', "http://x/feed")


def test_default_article_links_skip_archives_and_other_hosts():
    page = """<html><body>
      <a href="/news/a-first-long-story/">1</a> <a href="/news/a-first-long-story/#comments">1c</a>
      <a href="https://other.example/news/some-other-story/">x</a> <a href="/tag/some-long-tag/">t</a>
      <a href="/category/crime-news-briefs/">c</a> <a href="/news/">n</a> <a href="/donate/">d</a>
      <a href="/2026/10/second-story-here.html">2</a></body></html>"""
    assert article_links(page, "https://site.example/news/") == [
        "https://site.example/news/a-first-long-story/", "https://site.example/2026/10/second-story-here.html"]
    assert article_links(page, "https://site.example/news/", '//a[text()="2"]/@href') == [
        "https://site.example/2026/10/second-story-here.html"]


def test_article_page_with_json_ld_and_a_by_line():
    page = """<html lang="es"><head><title>Fallback</title>
      <script type="application/ld+json">{"@context": "https://schema.org", "@graph": [
        {"@type": "NewsArticle", "headline": "Rutas nuevas del oro", "datePublished": "2026-10-02T08:00:00-05:00",
         "dateModified": "2026-10-02T09:30:00-05:00", "keywords": "Perú, Minería ilegal"}]}</script></head>
      <body><article><p class="byline">Por Carmen Soto y Diego Paz</p>
      <div class="entry-content"><p>El oro sale por rutas nuevas hacia <a href="/tag/bolivia/">Bolivia</a>.</p>
      <h2>Análisis de Crime Briefs</h2><p>Las rutas cambian, los compradores no.</p></div></article></body></html>"""
    source = SourceConfig(name="p", kind="pages", url="https://site.example", language="es",
                          listing_url="https://site.example/noticias/")
    ext = Extraction(source, Countries(), BodyRules.for_publication("Crime Briefs"))
    brief = parse_article(page, "https://site.example/noticias/rutas-nuevas-del-oro/", ext)
    assert brief.title == "Rutas nuevas del oro"
    assert brief.authors == ("Carmen Soto", "Diego Paz")
    assert brief.published_at.isoformat() == "2026-10-02T13:00:00+00:00"
    assert brief.modified_at.isoformat() == "2026-10-02T14:30:00+00:00"
    assert brief.countries == ("peru",) and brief.tags == ("Minería ilegal",)
    assert 'href="https://site.example/tag/bolivia/"' in brief.lede
    assert brief.analysis == "<p>Las rutas cambian, los compradores no.</p>"


def test_extra_analysis_headings_from_the_config():
    rules = BodyRules.for_publication("Crime Briefs", ["Our Take"])
    body = split_body("<p>News.</p><h3>OUR  TAKE:</h3><p>View.</p>", "https://x/", rules)
    assert (body.lede, body.analysis) == ("<p>News.</p>", "<p>View.</p>")


def test_loose_text_and_line_breaks_become_paragraphs():
    rules = BodyRules.for_publication("Crime Briefs")
    body = split_body("First line <em>here</em><br>Second line<br><b>Crime Briefs Analysis</b><br>Third",
                      "https://x/", rules)
    assert body.lede == "<p>First line <em>here</em></p><p>Second line</p>"
    assert body.analysis == "<p>Third</p>"
