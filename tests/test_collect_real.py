"""Extraction against the real third-party samples in ../shared/fixtures/real (skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import feedparser
import pytest

from newsletter.collect.extract import BodyRules, split_body
from newsletter.collect.feed import parse_feed
from newsletter.collect.source import Extraction
from newsletter.collect.wordpress import brief_from_post, parse_posts
from newsletter.config import SourceConfig
from newsletter.countries import Countries
from newsletter.errors import SourceError

pytestmark = pytest.mark.real_fixtures
SITE = "https://insightcrime.org"


def extraction(kind: str = "feed", language: str = "en") -> Extraction:
    source = SourceConfig(name="insightcrime-en", kind=kind, url=SITE, language=language)
    return Extraction(source=source, countries=Countries(), rules=BodyRules.for_publication("InSight Crime"))


def as_html(text: str) -> str:
    """The text pages as the paragraphs they were, one per line (the samples keep no markup)."""
    import html

    return "".join(f"<p>{html.escape(line)}</p>" for line in text.splitlines() if line.strip())


def test_venezuela_feed_item_is_a_brief_with_two_authors_and_countries(real_fixtures: Path):
    data = (real_fixtures / "insightcrime_tag_venezuela_feed_excerpt.rss").read_bytes()
    harvest = parse_feed(data, SITE + "/tag/venezuela/feed/", extraction())
    [brief] = harvest.briefs
    assert (harvest.skipped, harvest.rejected) == (0, [])
    assert brief.key == "https://insightcrime.org/?p=352611"
    assert brief.title == "The InSight Take: US Drug Certification: Law Enforcement or Politics?"
    assert brief.authors == ("Deborah Bonello", "Jeremy McDermott")
    assert brief.countries == ("argentina", "bolivia", "brazil", "colombia", "ecuador", "el-salvador", "mexico",
                               "united-states", "venezuela")
    assert "Tren de Aragua" in brief.tags and "Venezuela" not in brief.tags
    assert brief.published_at.isoformat() == "2026-09-24T17:38:33+00:00"
    assert brief.image_url.startswith("https://i0.wp.com/insightcrime.org/wp-content/uploads/2026/09/")
    # No title-link preamble, no featured image in the text, no YouTube iframe; no analysis heading.
    assert brief.lede.startswith("<p>Why did the United States remove Venezuela")
    assert "<iframe" not in brief.lede and "<img" not in brief.lede
    assert brief.analysis == ""


def test_mexico_feed_item_is_a_profile_not_a_brief(real_fixtures: Path):
    data = (real_fixtures / "insightcrime_tag_mexico_feed_excerpt.rss").read_bytes()
    harvest = parse_feed(data, SITE + "/tag/mexico/feed/", extraction())
    assert (harvest.briefs, harvest.skipped) == ([], 1)


def test_illformed_feed_without_usable_entries_is_a_clear_error(real_fixtures: Path):
    data = (real_fixtures / "feedparser_illformed_rss_item_link_corrupted_ampersands.xml").read_bytes()
    with pytest.raises(SourceError, match="malformed feed and no entry could be recovered"):
        parse_feed(data, "http://link/feed/", extraction())


def test_script_in_entry_content_never_survives(real_fixtures: Path):
    parsed = feedparser.parse((real_fixtures / "feedparser_sanitize_entry_content_script.xml").read_bytes(),
                              sanitize_html=False)
    body = split_body(parsed.entries[0].content[0].value, "http://example.org/", extraction().rules)
    assert body.lede == "<p>safe description</p>"


def test_wp_json_subset_keeps_news_and_skips_profiles(real_fixtures: Path):
    posts = json.loads((real_fixtures / "insightcrime_colombia_groups_wpjson_subset.json").read_text("utf-8"))
    harvest = parse_posts(posts, extraction("wordpress"), SITE)
    assert harvest.skipped == len(posts) - 1
    [news] = harvest.briefs
    assert news.key == "332592"
    assert news.title == "Colombia\u2019s EMC Holds \u2018Total Peace\u2019 Hostage in Cauca"
    # `date` has no zone: without date_gmt it is read as UTC.
    assert news.published_at.isoformat() == "2026-02-11T16:37:41+00:00"
    assert news.lede.startswith("<p>At the heart of the conflict in Cauca")


def test_wp_json_relative_links_in_excerpts_become_absolute(real_fixtures: Path):
    posts = json.loads((real_fixtures / "insightcrime_colombia_groups_wpjson_subset.json").read_text("utf-8"))
    paisas = dict(next(p for p in posts if p["id"] == 4), link=SITE + "/news/paisas/")
    brief = brief_from_post(paisas, extraction("wordpress"), SITE)
    # Resolved against the post's own URL, as a browser would.
    assert 'href="https://insightcrime.org/news/paisas/groups-colombia/auc"' in brief.lede
    assert "&#8217;" not in brief.lede and "\u2019" in brief.lede


def test_wp_core_post_shape(real_fixtures: Path):
    fixtures = json.loads((real_fixtures / "wp_core_rest_api_fixtures.json").read_text("utf-8"))
    brief = brief_from_post(fixtures["PostsCollection"][0], extraction("wordpress"), "http://example.org")
    assert (brief.key, brief.title, brief.url) == ("4", "REST API Client Fixture: Post", "http://example.org/?p=4")
    assert brief.published_at.isoformat() == "2017-02-14T00:00:00+00:00"
    assert brief.lede == "<p>Updated post content.</p>"


def _after_title(text: str) -> str:
    """The article from its dateline on (the breadcrumb, kicker and title are the page's own)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if " / " in line and " BY " in line)
    return "\n".join(lines[start:])


def test_2016_brief_page_splits_at_the_heading_and_drops_furniture(real_fixtures: Path):
    text = _after_title((real_fixtures / "insightcrime_brief_2016_colombia_mexico.txt").read_text("utf-8"))
    body = split_body(as_html(text), SITE + "/news/brief/x/", extraction().rules)
    assert body.lede.startswith("<p>The presidents of Colombia and Mexico")
    assert "pledged to contribute $1 million" in body.lede
    assert body.analysis.startswith("<p>Peña Nieto's assessment")
    assert "Increased sharing of information" in body.analysis
    everything = body.lede + body.analysis
    for furniture in ("SEE ALSO", "share icon", "Was this content helpful", "DONATE", "What are your thoughts",
                      "We encourage readers", "Related Content", "About InSight Crime", "Escaping Barrio 18",
                      "InSight Crime Analysis", "28 OCT 2016"):
        assert furniture not in everything, furniture


def _sections(real_fixtures: Path) -> list[str]:
    text = (real_fixtures / "insightcrime_brief_pages_text_excerpts.txt").read_text("utf-8")
    return [part.split("\n", 1)[1] for part in text.split("===== ")[1:]]


@pytest.mark.parametrize("index, lede_start, analysis_start", [
    (0, "Authorities in Colombia have captured", "The Revolutionary Armed Forces of Colombia"),
    # 2012: "Insight Crime Analysis " (lower-case s, trailing space) is the same heading.
    (1, "Colombian police have seized 17 tons", "Colombia has an estimated 5 percent"),
])
def test_brief_pages_heading_variants(real_fixtures: Path, index: int, lede_start: str, analysis_start: str):
    text = _after_title(_sections(real_fixtures)[index])
    body = split_body(as_html(text), SITE + "/news/brief/x/", extraction().rules)
    assert body.lede.startswith(f"<p>{lede_start}")
    assert body.analysis.startswith(f"<p>{analysis_start}")
    assert "Analysis" not in body.lede and "SEE ALSO" not in body.analysis


def test_spanish_page_share_bar_text_is_dropped(real_fixtures: Path):
    text = _sections(real_fixtures)[3]
    lines = text.splitlines()[2:]  # after the page title
    body = split_body(as_html("\n".join(lines)), "https://es.insightcrime.org/x/", extraction(language="es").rules)
    assert body.lede.startswith("<p>A principios de 2009")
    assert "SHARE" not in body.lede and "Tweet" not in body.lede
