"""The collector against a real WordPress (Debian's package on MariaDB, tests/support/wordpress.py):
what a publisher expects after running `newsletter collect`, `status` and `feed` on their sites.

Every test starts from both sites as installed (no posts, every switch off) and its own store.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import feedparser
import pytest
import sqlalchemy as sa
from lxml import etree

from tests.support.cli import run_cli, run_json
from tests.support.configs import base_config, write_config
from tests.support.wordpress import Site, WordPressServer, brief_html

TOMBSTONE = "{http://purl.org/atompub/tombstones/1.0}deleted-entry"


@pytest.fixture
def sites(wordpress: WordPressServer) -> dict[str, Site]:
    for site in wordpress.sites.values():
        site.reset()
    return wordpress.sites


def source(site: Site, **settings: Any) -> dict[str, Any]:
    return {"name": f"wp-{site.name}", "kind": "wordpress", "url": site.url, "language": site.language, **settings}


def configure(folder: Path, *sources: dict[str, Any], store_url: str | None = None) -> Path:
    data = base_config(store_url or f"sqlite:///{folder / 'store.sqlite3'}")
    # The analysis heading is "{publication name} Analysis": the sites write as InSight Crime does.
    data["publication"]["name"] = "InSight Crime"
    data["feed"]["entries"] = 200
    data["sources"] = list(sources)
    return write_config(folder, data)


def collect(config: Path, env: dict[str, str] | None = None, timeout: float = 180) -> tuple[int, dict[str, dict]]:
    code, data = run_json("collect", config=config, env=env, timeout=timeout)
    return code, {s["name"]: s for s in data["sources"]}


def status(config: Path) -> dict[str, dict]:
    code, data = run_json("status", config=config)
    assert code == 0, data
    return {s["name"]: s for s in data["sources"]}


def feed(config: Path, language: str) -> feedparser.FeedParserDict:
    run_cli("feed", config=config, check=True)
    return feedparser.parse(str(config.parent / "public" / "feeds" / f"{language}.atom"))


def titles(config: Path, language: str) -> list[str]:
    """The entry titles a reader of the language's feed sees, in feed order (duplicates kept)."""
    return [e.title for e in feed(config, language).entries]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def an_hour_ago() -> str:
    return iso(datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1))


# --- paging: nothing lost ---------------------------------------------------------------------


def test_bulk_publish_with_one_modified_time_stores_every_post(sites, tmp_path, store_url):
    en, es = sites["en"], sites["es"]
    shared = an_hour_ago()
    en.bulk_publish(25, title="Bulk seizure number {i}", date_gmt=shared)
    es.bulk_publish(12, title="Incautación masiva número {i}", date_gmt=shared, tags=["México"])
    config = configure(tmp_path, source(en, per_page=10), source(es, per_page=5), store_url=store_url)

    code, result = collect(config)
    assert code == 0, result
    assert (result["wp-en"]["new"], result["wp-es"]["new"]) == (25, 12), result
    assert sorted(titles(config, "en")) == sorted(f"Bulk seizure number {i}" for i in range(1, 26))
    assert len(titles(config, "es")) == 12
    assert {n: s["briefs"] for n, s in status(config).items()} == {"wp-en": 25, "wp-es": 12}

    # A second bulk publish, again one modified time for all, after the first collect's cursor.
    later = iso(datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=30))
    en.bulk_publish(25, title="Second wave number {i}", date_gmt=later)
    code, result = collect(config)
    assert code == 0, result
    assert result["wp-en"]["new"] == 25, result
    assert status(config)["wp-en"]["briefs"] == 50
    seen = titles(config, "en")
    assert len(seen) == len(set(seen)) == 50


def test_a_backlog_of_max_pages_pages_is_stored_whole(sites, tmp_path):
    # Posts a minute apart, as many as max_pages pages of per_page hold: the first collect takes them all.
    start = iso(datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2))
    sites["en"].bulk_publish(30, title="Backlog story number {i}", date_gmt=start, step_seconds=60)
    config = configure(tmp_path, source(sites["en"], per_page=10, max_pages=3))

    code, result = collect(config)
    assert code == 0, result
    assert result["wp-en"]["new"] == 30, result
    assert result["wp-en"]["requests"] <= 4, result


def test_recollecting_an_unchanged_site_costs_one_request_per_source(sites, tmp_path):
    sites["en"].bulk_publish(12, title="Quiet day number {i}", date_gmt=an_hour_ago())
    sites["es"].bulk_publish(3, title="Día tranquilo número {i}", date_gmt=an_hour_ago())
    config = configure(tmp_path, source(sites["en"], per_page=5), source(sites["es"], per_page=5))
    assert collect(config)[0] == 0

    code, again = collect(config)
    assert code == 0, again
    for name in ("wp-en", "wp-es"):
        assert (again[name]["new"], again[name]["updated"]) == (0, 0), again
        assert again[name]["requests"] <= 1, again


def test_edits_publishing_and_trashing_while_the_collector_pages(sites, tmp_path):
    en = sites["en"]
    ids = en.bulk_publish(25, title="Paged story number {i}", date_gmt=an_hour_ago())
    # Before the collector's second page, the publisher edits one post, publishes another and trashes a third.
    en.on_request(2, [
        {"op": "update", "id": ids[0], "title": "Paged story number 1, corrected"},
        {"op": "insert", "title": "Breaking while paging", "content": brief_html("Breaking while paging"),
         "categories": ["news"], "tags": ["Colombia"]},
        {"op": "trash", "id": ids[12]},
    ])
    config = configure(tmp_path, source(en, per_page=10))
    assert collect(config)[0] == 0
    code, result = collect(config)
    assert code == 0, result

    expected = {f"Paged story number {i}" for i in range(2, 26)} - {"Paged story number 13"}
    expected |= {"Paged story number 1, corrected", "Breaking while paging"}
    seen = titles(config, "en")
    assert sorted(seen) == sorted(expected)
    assert status(config)["wp-en"]["briefs"] - withdrawn(status(config)["wp-en"]) == len(expected)


def test_an_edit_is_applied_once(sites, tmp_path):
    en = sites["en"]
    post = en.publish("Port seizure in Buenaventura", tags=["Colombia"])
    config = configure(tmp_path, source(en))
    assert collect(config)[1]["wp-en"]["new"] == 1

    en.update(post["id"], title="Port seizure in Buenaventura grows",
              content=brief_html("Port seizure in Buenaventura grows", paragraphs=3))
    code, result = collect(config)
    assert code == 0 and (result["wp-en"]["new"], result["wp-en"]["updated"]) == (0, 1), result
    assert titles(config, "en") == ["Port seizure in Buenaventura grows"]

    code, result = collect(config)
    assert code == 0 and (result["wp-en"]["new"], result["wp-en"]["updated"]) == (0, 0), result


# --- one article, one brief -------------------------------------------------------------------


def test_an_article_seen_through_the_api_and_two_feeds_is_one_brief(sites, tmp_path):
    en = sites["en"]
    both = en.publish("Cocaine route through Honduras and Colombia", tags=["Colombia", "Honduras"])
    en.publish("Extortion in Tegucigalpa", tags=["Honduras"])
    en.publish("Coca crops in Cauca", tags=["Colombia"])
    # The publisher's set-up: the REST API, the site's RSS feed and per-country tag feeds sharing posts.
    config = configure(tmp_path, source(en), {"name": "rss", "kind": "feed", "url": en.url + "/feed/", "language": "en"},
                       {"name": "tag-colombia", "kind": "feed", "url": en.url + "/tag/colombia/feed/", "language": "en"},
                       {"name": "tag-honduras", "kind": "feed", "url": en.url + "/tag/honduras/feed/", "language": "en"})
    code, result = collect(config)
    assert code == 0, result
    seen = titles(config, "en")
    assert sorted(seen) == ["Coca crops in Cauca", "Cocaine route through Honduras and Colombia",
                            "Extortion in Tegucigalpa"]
    assert sorted(titles(config, "en/colombia")) == ["Coca crops in Cauca", "Cocaine route through Honduras and Colombia"]

    # Edited while every source sees it: one brief, updated once, still one entry.
    en.update(both["id"], title="Cocaine route through Honduras, Colombia and Guatemala",
              content=brief_html("Cocaine route through Honduras, Colombia and Guatemala", country="Honduras"))
    code, result = collect(config)
    assert code == 0, result
    assert sum(r["updated"] for r in result.values()) == 1, result
    assert sum(r["new"] for r in result.values()) == 0, result
    seen = titles(config, "en")
    assert sorted(seen) == ["Coca crops in Cauca", "Cocaine route through Honduras, Colombia and Guatemala",
                            "Extortion in Tegucigalpa"]


# --- only public briefs, and retractions --------------------------------------------------------


def test_only_public_posts_are_stored(sites, tmp_path):
    en = sites["en"]
    tomorrow = iso(datetime.now(timezone.utc) + timedelta(days=1))
    en.publish("Public brief on Colombia")
    en.publish("Password brief for members", password="members-only")
    en.publish("Private brief for editors", status="private")
    en.publish("Draft brief not ready", status="draft")
    en.publish("Pending brief awaiting review", status="pending")
    en.publish("Future brief scheduled", status="future", date_gmt=tomorrow)
    config = configure(tmp_path, source(en))

    code, result = collect(config)
    assert code == 0, result
    assert result["wp-en"]["new"] == 1, result
    assert titles(config, "en") == ["Public brief on Colombia"]


def test_a_scheduled_post_is_collected_when_wordpress_publishes_it(sites, tmp_path):
    en = sites["en"]
    # An editor schedules a draft: its modified time is when it was scheduled, not when it goes out.
    draft = en.publish("Scheduled brief on Ecuador", status="draft", tags=["Ecuador"])
    scheduled = en.update(draft["id"], status="future", date_gmt=iso(datetime.now(timezone.utc) + timedelta(hours=1)))
    assert scheduled["status"] == "future"
    time.sleep(2)
    en.publish("Brief published meanwhile")
    config = configure(tmp_path, source(en))
    code, result = collect(config)
    assert code == 0 and result["wp-en"]["new"] == 1, result
    assert titles(config, "en") == ["Brief published meanwhile"]

    published = en.one("cron_publish", id=draft["id"])
    assert published["status"] == "publish" and published["modified_gmt"] == scheduled["modified_gmt"]
    code, result = collect(config)
    assert code == 0 and result["wp-en"]["new"] == 1, result
    assert sorted(titles(config, "en")) == ["Brief published meanwhile", "Scheduled brief on Ecuador"]


def test_trashed_unpublished_deleted_and_protected_posts_are_withdrawn(sites, tmp_path):
    en = sites["en"]
    en.publish("Brief that stays")
    trashed = en.publish("Brief later trashed")
    unpublished = en.publish("Brief later unpublished")
    deleted = en.publish("Brief later deleted")
    protected = en.publish("Brief later protected")
    private = en.publish("Brief later made private")
    config = configure(tmp_path, source(en))
    assert collect(config)[1]["wp-en"]["new"] == 6

    en.trash(trashed["id"])
    en.update(unpublished["id"], status="draft")
    en.delete(deleted["id"])
    en.update(protected["id"], password="members-only")
    en.update(private["id"], status="private")
    code, result = collect(config)
    assert code == 0, result

    document = feed(config, "en")
    assert [e.title for e in document.entries] == ["Brief that stays"]
    tree = etree.parse(str(config.parent / "public" / "feeds" / "en.atom"))
    tombstones = {t.get("ref") for t in tree.getroot().iter(TOMBSTONE)}
    assert len(tombstones) == 5
    assert document.entries[0].id not in tombstones
    counts = status(config)["wp-en"]
    assert withdrawn(counts) == 5, counts


def withdrawn(source_status: dict[str, Any]) -> int:
    """How many of a source's briefs `status --json` counts as withdrawn."""
    return source_status["withdrawn"]


def test_a_bad_post_is_skipped_with_its_reason_and_the_rest_stored(sites, tmp_path):
    en = sites["en"]
    en.publish("Brief before the bad ones")
    en.publish("Brief with stray bytes",
               content=brief_html("Brief with stray bytes") + "<p>Pasted\u000b from a \u001b[0m terminal\ufffe.</p>")
    untitled = en.publish("")
    en.publish("Brief after the bad ones")
    config = configure(tmp_path, source(en))

    code, result = collect(config)
    assert code == 0 and result["wp-en"]["error"] is None, result
    # The post without a title is skipped, with its id and why; the rest of the source is stored.
    assert [(s["id"], s["reason"]) for s in result["wp-en"]["skipped"]] == [(str(untitled["id"]), "no title")], result
    assert result["wp-en"]["new"] == 3, result
    # Control characters, which XML cannot carry and lxml refuses, are dropped; the post's text is kept.
    entries = {e.title: e for e in feed(config, "en").entries}
    assert sorted(entries) == ["Brief after the bad ones", "Brief before the bad ones", "Brief with stray bytes"]
    text = entries["Brief with stray bytes"].content[0].value
    assert "Pasted from a [0m terminal." in text, text
    assert not re.search("[\x0b\x1b\ufffe]", text)


# --- briefs versus profiles ---------------------------------------------------------------------


def test_categories_and_profile_rules_tell_briefs_from_profiles(sites, tmp_path):
    en, es = sites["en"], sites["es"]
    en.publish("Cartel leader arrested in Sinaloa", tags=["Mexico"], heading="h2")
    en.publish("Extortion rises in Honduras", tags=["Honduras"], heading="h3")
    en.publish("Coca crops in Peru", tags=["Peru"], heading="strong")
    en.publish("Sinaloa Cartel", categories=["mexico-organized-crime-news"], tags=["Mexico", "Mexico Groups"])
    en.publish("El Mayo", categories=["mexico-organized-crime-news"], tags=["Mexico", "Mexico Personalities"])
    es.publish("Capturan a un jefe del cartel", tags=["México"])
    es.publish("Cartel de Sinaloa", categories=["mexico-crimen-organizado"], tags=["México"])
    es.publish("Un jefe criminal", tags=["México", "México Personajes"])
    # As in config.toml: the English source takes the News category, the Spanish one every post.
    config = configure(tmp_path, source(en, categories=["news"]), source(es))

    code, result = collect(config)
    assert code == 0, result
    assert sorted(titles(config, "en")) == ["Cartel leader arrested in Sinaloa", "Coca crops in Peru",
                                            "Extortion rises in Honduras"]
    assert titles(config, "es") == ["Capturan a un jefe del cartel"]

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT title, lede, analysis, countries FROM briefs")).all()
    engine.dispose()
    for title, lede, analysis, countries in rows:
        # Each heading style (h2, h3, a bold line; English and Spanish) splits the analysis off.
        assert "InSight Crime" not in lede + analysis, title
        assert "reported on" in lede or "informaron" in lede, title
        assert "trend" in analysis or "tendencia" in analysis, title
    assert {t: c for t, _, _, c in rows}["Capturan a un jefe del cartel"] in (["mexico"], '["mexico"]')


# --- errors a publisher's site gives ------------------------------------------------------------


def test_rest_api_requiring_login_explains_application_passwords(sites, tmp_path):
    en, es = sites["en"], sites["es"]
    en.publish("Brief behind a login")
    es.publish("Noticia pública")
    config = configure(tmp_path, source(en, retries=0), source(es))
    with en.switch("nl_require_login", 1):
        code, result = collect(config)
    assert code == 1
    error = result["wp-en"]["error"]
    assert "401" in error and "application password" in error.lower(), error
    assert "auth_user" in error and "auth_password_env" in error, error
    assert result["wp-es"]["error"] is None and result["wp-es"]["new"] == 1
    assert status(config)["wp-en"]["last_error"] == error


def test_application_password_opens_a_rest_api_that_requires_login(sites, tmp_path):
    en = sites["en"]
    en.publish("Brief for logged-in readers")
    en.publish("Members brief", password="members-only")
    en.publish("Editors only", status="private")
    password = en.app_password()
    config = configure(tmp_path, source(en, auth_user="admin", auth_password_env="WP_APP_PASSWORD"))
    with en.switch("nl_require_login", 1):
        code, result = collect(config, env={"WP_APP_PASSWORD": password})
    assert code == 0, result
    # Logged in, the API shows more than the public sees; the collector still takes only public briefs.
    assert titles(config, "en") == ["Brief for logged-in readers"]


@pytest.mark.parametrize("answer, words", [
    ("html", ["answered HTML", "not JSON", "/wp-json/"]),
    ("fatal", ["HTTP 500"]),
])
def test_a_broken_site_is_reported_and_the_other_still_collected(sites, tmp_path, answer, words):
    en, es = sites["en"], sites["es"]
    en.publish("Brief on a broken site")
    es.publish("Noticia en un sitio sano")
    config = configure(tmp_path, source(en, retries=1), source(es))
    with en.switch("nl_answer", answer):
        code, result = collect(config)
    assert code == 1
    error = result["wp-en"]["error"]
    for word in words:
        assert word in error, error
    assert result["wp-en"]["new"] == 0
    assert result["wp-es"]["error"] is None and result["wp-es"]["new"] == 1
    assert status(config)["wp-en"]["last_error"] == error
    assert titles(config, "es") == ["Noticia en un sitio sano"]


@pytest.mark.parametrize("switch", [("nl_answer", "html"), ("nl_answer", "fatal"), ("nl_require_login", 1)])
def test_error_lines_give_the_reason_before_the_url(sites, tmp_path, switch):
    en = sites["en"]
    config = configure(tmp_path, source(en, retries=0))
    with en.switch(*switch):
        code, result = collect(config)
    assert code == 1
    error = result["wp-en"]["error"]
    reason = error[:error.index("127.0.0.1")]
    assert not reason.startswith("http") and re.search(r"[A-Za-z]{4}", reason), error


def test_maintenance_mode_defers_the_source_without_stalling_the_run(sites, tmp_path):
    en, es = sites["en"], sites["es"]
    en.publish("Brief during maintenance")
    es.publish("Noticia durante el mantenimiento")
    config = configure(tmp_path, source(en), source(es))
    with en.maintenance():
        started = time.monotonic()
        code, result = collect(config, timeout=60)
        took = time.monotonic() - started
        assert code == 1, result
        # WordPress says Retry-After: 600, longer than the retry budget: no waiting, no retrying.
        assert took < 30, f"the run stalled {took:.0f} s"
        assert result["wp-en"]["requests"] == 1, result
        assert result["wp-es"]["new"] == 1
        assert "deferred until" in (status(config)["wp-en"]["last_error"] or "") or \
            "deferred until" in run_cli("status", config=config, check=True).stdout

        # The next run within the deferral does not ask the site at all.
        code, result = collect(config, timeout=60)
        assert code == 1 and result["wp-en"]["requests"] == 0, result

