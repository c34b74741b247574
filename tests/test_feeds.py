"""Atom feeds as a feed reader meets them: valid, complete, stable ids, attribution, nothing hostile."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from lxml import html

from newsletter import feeds
from newsletter.config import load
from newsletter.feeds.plan import Feed
from tests.support.cli import run_cli, run_json
from tests.support.configs import base_config, write_config
from tests.support.feeds import (
    ATOM, PUBLIC, SITE, assert_valid_atom, links, parse, sample, site_config, store, xml,
)
from tests.support.httpserver import FixtureServer, Reply

HISTORY = "{http://purl.org/syndication/history/1.0}"


@pytest.fixture
def config(tmp_path: Path, store_url: str):
    return site_config(tmp_path, store_url)


@pytest.fixture
def out(config) -> Path:
    return config.resolve(config.feed.output_dir)


def entry_by_id(parsed, guid: str):
    matches = [e for e in parsed.entries if e.id == guid]
    assert len(matches) == 1, f"{len(matches)} entries with id {guid}"
    return matches[0]


def guid_of(engine: sa.Engine, n: int, language: str = "en") -> str:
    from newsletter import briefs

    with engine.connect() as conn:
        return next(b.guid for b in briefs.recent(conn, limit=10_000) if b.key == str(1000 + n) and b.language == language)


def test_every_generated_feed_is_valid_atom(real_fixtures: Path, tmp_path: Path, store_url: str, engine) -> None:
    config = site_config(tmp_path, store_url, entries=3, archive_size=4)
    store(engine, *(sample(n, countries=("colombia", "mexico") if n % 2 else ("colombia",)) for n in range(11)))
    store(engine, *(sample(n, language="es") for n in range(5)))
    paths = feeds.build_all(config, engine)
    names = {str(p.relative_to(config.resolve("public/feeds"))) for p in paths}
    assert {"en.atom", "en/colombia.atom", "en/mexico.atom", "es.atom", "es/colombia.atom",
            "en/archive/1.atom", "en/archive/2.atom", "es/archive/1.atom"} <= names
    assert_valid_atom(real_fixtures / "rfc4287_atom.rnc", paths)


def test_feed_fields_read_back_with_feedparser(config, out: Path, engine) -> None:
    store(engine, sample(1), sample(2, authors=("Carla Díaz",), countries=("colombia", "venezuela"),
                                   image_url="/wp-content/uploads/port.jpg"))
    feeds.build_all(config, engine)
    parsed = parse(out / "en.atom")
    feed = parsed.feed
    assert feed.id == f"{PUBLIC}/feeds/en.atom"
    assert feed.title == "Crime Briefs Test: news briefs"
    assert feed.subtitle == "News briefs with analysis from Crime Briefs Test"
    assert feed.language == "en"
    assert feed.author_detail.name == "Crime Briefs Test" and feed.author_detail.href == SITE
    assert "CC BY-NC 4.0" in feed.rights and "https://creativecommons.org/licenses/by-nc/4.0/" in feed.rights
    assert feed.icon == f"{SITE}/favicon.ico"
    assert feed.generator == "newsletter"
    rels = {link.rel: link.href for link in feed.links}
    assert rels["self"] == f"{PUBLIC}/feeds/en.atom"
    assert rels["alternate"] == SITE
    # The feed's updated is its newest entry's, so an unchanged feed rebuilds to the same bytes.
    assert feed.updated == "2026-03-02T14:00:00+00:00"

    newest, older = parsed.entries
    assert newest.id == guid_of(engine, 2) and newest.id.startswith("tag:briefs.example.org,2026-03-02:")
    assert newest.title == "Brief number 2 on cocaine routes"
    assert newest.published == newest.updated == "2026-03-02T14:00:00+00:00"
    assert [a.name for a in older.authors] == ["Ana Ruiz", "Ben Ode"]
    assert [a.name for a in newest.authors] == ["Carla Díaz"]
    assert [(t.term, t.get("label")) for t in newest.tags] == [
        ("colombia", "Colombia"), ("venezuela", "Venezuela"), ("Coca", None), ("ELN", None)]
    (alternate,) = newest.links
    assert (alternate.rel, alternate.href, alternate.type) == ("alternate", f"{SITE}/news/brief-2/", "text/html")
    # The summary is the analysis excerpt, then the attribution (for readers that show only the summary).
    assert newest.summary == (
        "The seizure shows a route that has moved north. Traffickers adapt fast.\n\n"
        f"By Carla Díaz for Crime Briefs Test. This is an excerpt; read the original at {SITE}/news/brief-2/. "
        "© Crime Briefs Test, licensed under CC BY-NC 4.0: https://creativecommons.org/licenses/by-nc/4.0/")

    content = newest.content[0]
    assert content.type == "text/html"
    page = html.fromstring(content.value)
    text = page.text_content()
    assert "By Carla Díaz for Crime Briefs Test" in text
    assert "This is an excerpt of" in text
    assert "Police seized 2 tonnes in the port." in text
    assert "Crime Briefs Test Analysis" in text
    anchors = page.xpath("//a")
    assert anchors[0].get("href") == f"{SITE}/news/brief-2/"  # at the top
    licence = [a for a in anchors if a.get("href") == "https://creativecommons.org/licenses/by-nc/4.0/"]
    assert licence and licence[0].text == "CC BY-NC 4.0"
    original_links = [a for a in anchors if a.get("href") == f"{SITE}/news/brief-2/"]
    assert len(original_links) == 2  # top and bottom
    assert page.xpath("//img/@src") == [f"{SITE}/wp-content/uploads/port.jpg"]


def test_summary_falls_back_to_the_lede_without_analysis(config, out: Path, engine) -> None:
    store(engine, sample(1, analysis=""))
    feeds.build_all(config, engine)
    (item,) = parse(out / "en.atom").entries
    assert item.summary.split("\n\n")[0] == "Police seized 1 tonnes in the port. The haul was the largest this year."
    assert "Analysis" not in item.content[0].value


def test_country_feeds_hold_only_their_country(config, out: Path, engine) -> None:
    store(engine, sample(1, countries=("mexico",)), sample(2, countries=("colombia", "mexico")), sample(3))
    store(engine, sample(4, language="es", countries=("mexico",)))
    feeds.build_all(config, engine)
    mexico = parse(out / "en" / "mexico.atom")
    assert mexico.feed.title == "Crime Briefs Test: Mexico"
    assert mexico.feed.subtitle == "News briefs with analysis on Mexico from Crime Briefs Test"
    assert {e.link for e in mexico.entries} == {f"{SITE}/news/brief-1/", f"{SITE}/news/brief-2/"}
    assert links(xml(out / "en" / "mexico.atom"))["self"] == f"{PUBLIC}/feeds/en/mexico.atom"
    assert len(parse(out / "en" / "colombia.atom").entries) == 2
    assert parse(out / "es" / "mexico.atom").feed.title == "Crime Briefs Test: México"
    assert not (out / "es" / "colombia.atom").exists()


def test_spanish_feeds_say_xml_lang_es_and_speak_spanish(config, out: Path, engine) -> None:
    store(engine, sample(1, language="es", authors=("Ana Ruiz", "Ben Ode", "Carla Díaz")))
    feeds.build_all(config, engine)
    for path in (out / "es.atom", out / "es" / "colombia.atom"):
        root = xml(path)
        assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "es"
    parsed = parse(out / "es.atom")
    assert parsed.feed.title == "Crime Briefs Test: noticias"
    assert links(xml(out / "es.atom"))["alternate"] == "https://es.briefs.example.org"
    text = html.fromstring(parsed.entries[0].content[0].value).text_content()
    assert "Por Ana Ruiz, Ben Ode y Carla Díaz para Crime Briefs Test" in text
    assert "Este es un extracto de" in text and "Análisis de Crime Briefs Test" in text
    assert "Lea el artículo completo" in text and "licencia" in text


def test_rebuilding_unchanged_briefs_rewrites_nothing(config, out: Path, engine) -> None:
    store(engine, sample(1), sample(2))
    first = feeds.build(config, engine)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in first.written}
    second = feeds.build(config, engine)
    assert second.written == [] and sorted(second.unchanged) == sorted(first.written)
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in first.written} == before


def test_a_deleted_or_overwritten_feed_file_is_written_again(config, out: Path, engine) -> None:
    store(engine, sample(1))
    feeds.build_all(config, engine)
    good = (out / "en" / "colombia.atom").read_bytes()
    (out / "en.atom").unlink()
    (out / "en" / "colombia.atom").write_bytes(b"<feed/>")
    report = feeds.build(config, engine)
    assert sorted(report.written) == [out / "en" / "colombia.atom", out / "en.atom"]
    assert (out / "en" / "colombia.atom").read_bytes() == good
    parse(out / "en.atom")


def test_a_config_change_reaches_every_feed(tmp_path: Path, store_url: str, engine) -> None:
    config = site_config(tmp_path, store_url)
    store(engine, sample(1))
    feeds.build_all(config, engine)
    text = config.path.read_text(encoding="utf-8").replace('name = "Crime Briefs Test"', 'name = "Renamed Briefs"')
    config.path.write_text(text, encoding="utf-8")
    renamed = load(config.path)
    assert len(feeds.build(renamed, engine).written) == 2
    assert parse(renamed.resolve("public/feeds") / "en.atom").feed.title == "Renamed Briefs: news briefs"


def test_an_edited_title_does_not_create_a_second_entry(config, out: Path, engine) -> None:
    store(engine, sample(1), sample(2))
    feeds.build_all(config, engine)
    guid = guid_of(engine, 1)
    old = entry_by_id(parse(out / "en.atom"), guid)
    edited = sample(1, title="Brief number 1, corrected", modified_at=sample(1).modified_at + timedelta(days=1))
    store(engine, edited)
    report = feeds.build(config, engine)
    assert out / "en.atom" in report.written
    parsed = parse(out / "en.atom")
    assert len(parsed.entries) == 2
    new = entry_by_id(parsed, guid)
    assert new.title == "Brief number 1, corrected"
    assert new.updated_parsed > old.updated_parsed
    assert new.published == old.published
    assert parsed.feed.updated == new.updated  # the feed surfaces the update


def test_an_edit_without_a_new_modified_time_still_surfaces(config, out: Path, engine) -> None:
    """RSS and page sources carry no modified time: the store noticing the change is enough."""
    store(engine, sample(1))
    feeds.build_all(config, engine)
    old = parse(out / "en.atom").entries[0]
    store(engine, sample(1, lede="<p>Police seized 3 tonnes, not 1, the police now say.</p>"))
    feeds.build_all(config, engine)
    new = parse(out / "en.atom").entries[0]
    assert new.id == old.id
    assert new.updated_parsed > old.updated_parsed
    assert "3 tonnes, not 1" in new.content[0].value


def _urls(path: Path) -> list[str]:
    root = xml(path)
    found = [link.get("href") for link in root.iter(f"{ATOM}link")]
    found += [e.text for e in root.iter(f"{ATOM}icon", f"{ATOM}uri")]
    for content in root.iter(f"{ATOM}content"):
        fragment = html.fromstring(content.text)
        found += fragment.xpath("//a/@href | //img/@src")
    return found


def test_every_url_is_absolute(config, out: Path, engine) -> None:
    store(engine, sample(1, url="/news/relative-brief/", image_url="uploads/a.jpg",
                         lede='<p>See <a href="../other/">this</a> and <img src="/img/map.png"></p>'))
    feeds.build_all(config, engine)
    urls = _urls(out / "en.atom") + _urls(out / "en" / "colombia.atom")
    assert len(urls) > 10
    for url in urls:
        parts = urlsplit(url)
        assert parts.scheme == "https" and parts.netloc, url
    assert f"{SITE}/news/relative-brief/" in urls
    assert f"{SITE}/news/other/" in urls and f"{SITE}/img/map.png" in urls


# Hostile content: whatever the store holds, the feed carries none of it. One test each.

def _feed_text(config, out: Path, engine, brief) -> str:
    store(engine, brief)
    feeds.build_all(config, engine)
    path = out / "en.atom"
    parse(path)  # still a well-formed feed
    root = xml(path)
    contents = "".join(c.text for c in root.iter(f"{ATOM}content"))
    return path.read_text(encoding="utf-8") + contents


def test_script_stays_out(config, out: Path, engine) -> None:
    text = _feed_text(config, out, engine, sample(
        1, title="<script>alert(1)</script>Title", lede="<p>Fine<script>document.cookie</script></p>",
        analysis="<p>Why</p><SCRIPT src=//evil.example/x.js></SCRIPT>"))
    assert "script" not in text.lower() and "document.cookie" not in text and "evil.example" not in text
    assert parse(out / "en.atom").entries[0].title == "Title"


def test_iframes_stay_out(config, out: Path, engine) -> None:
    text = _feed_text(config, out, engine, sample(
        1, lede='<p>Watch</p><iframe src="https://www.youtube.com/embed/x"></iframe>',
        analysis='<iframe srcdoc="<b>x</b>"></iframe><p>Why</p>'))
    assert "iframe" not in text.lower() and "youtube" not in text and "srcdoc" not in text


def test_event_handlers_stay_out(config, out: Path, engine) -> None:
    text = _feed_text(config, out, engine, sample(
        1, lede='<p onclick="steal()">Click</p><img src="/a.png" onerror="steal()">',
        analysis='<a href="https://ok.example/" onmouseover="steal()">ok</a>'))
    assert "steal()" not in text and not re.search(r"\bon(click|error|mouseover)\b", text.lower())


def test_javascript_urls_stay_out(config, out: Path, engine) -> None:
    text = _feed_text(config, out, engine, sample(
        1, url="javascript:alert(1)", image_url="javascript:alert(2)",
        lede='<p><a href="javascript:alert(3)">x</a> <a href=" JaVaScRiPt:alert(4)">y</a></p>',
        analysis='<p><a href="data:text/html,<script>alert(5)</script>">z</a></p>'))
    assert "javascript" not in text.lower() and "alert(" not in text and "data:text" not in text
    # The entry still links somewhere safe: the publisher's site.
    assert parse(out / "en.atom").entries[0].link == SITE


def test_xml_forbidden_characters_stay_out(config, out: Path, engine) -> None:
    # NUL is left out: PostgreSQL text cannot hold it, so it never reaches the store.
    bad = "\x01\x08\x0b\x0c\x1f\ufffe\uffff"
    _feed_text(config, out, engine, sample(
        1, title=f"Title{bad}", authors=(f"Ana{bad} Ruiz",), tags=(f"Coca{bad}",),
        lede=f"<p>News{bad} here.</p>", analysis=f"<p>Why{bad} now.</p>", url=f"{SITE}/news/a\x01b/"))
    raw = (out / "en.atom").read_bytes().decode("utf-8")
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", raw)
    item = parse(out / "en.atom").entries[0]
    assert item.title == "Title" and item.author == "Ana Ruiz" and item.summary.startswith("Why now.\n\nBy Ana Ruiz ")


def _chain(out: Path, start: str) -> list[Path]:
    """The documents a reader fetches: the feed, then prev-archive links to the oldest page."""
    path = out / start
    seen = [path]
    while (prev := links(xml(path)).get("prev-archive")):
        path = out / prev.removeprefix(f"{PUBLIC}/feeds/")
        assert path not in seen
        seen.append(path)
    return seen


def _ids(path: Path) -> set[str]:
    return {e.id for e in parse(path).entries}


def test_archives_link_up_and_lose_nothing(tmp_path: Path, store_url: str, engine) -> None:
    config = site_config(tmp_path, store_url, entries=3, archive_size=4)
    out = config.resolve("public/feeds")
    store(engine, *(sample(n) for n in range(10)))
    # Collected late: an old brief, stored after the others.
    store(engine, sample(-100))
    feeds.build_all(config, engine)
    current = xml(out / "en.atom")
    assert links(current)["prev-archive"] == f"{PUBLIC}/feeds/en/archive/2.atom"
    assert current.find(f"{HISTORY}archive") is None
    for page, prev, nxt in ((1, None, "2"), (2, "1", None)):
        doc = xml(out / f"en/archive/{page}.atom")
        rels = links(doc)
        assert doc.find(f"{HISTORY}archive") is not None
        assert rels["current"] == f"{PUBLIC}/feeds/en.atom"
        assert rels["self"] == f"{PUBLIC}/feeds/en/archive/{page}.atom"
        assert rels.get("prev-archive") == (prev and f"{PUBLIC}/feeds/en/archive/{prev}.atom")
        assert rels.get("next-archive") == (nxt and f"{PUBLIC}/feeds/en/archive/{nxt}.atom")
        assert "hub" not in rels
        assert len(parse(out / f"en/archive/{page}.atom").entries) == 4
    assert not (out / "en/archive/3.atom").exists()
    # The feed holds the newest 3 plus the late old brief, which is in no full page yet.
    assert _ids(out / "en.atom") == {guid_of(engine, n) for n in (9, 8, 7, -100)}
    everything = set().union(*(_ids(p) for p in _chain(out, "en.atom")))
    assert everything == {guid_of(engine, n) for n in (*range(10), -100)}


def test_a_reader_offline_for_a_month_misses_nothing(tmp_path: Path, store_url: str, engine) -> None:
    config = site_config(tmp_path, store_url, entries=3, archive_size=4)
    out = config.resolve("public/feeds")
    store(engine, *(sample(n) for n in range(6)))
    feeds.build_all(config, engine)
    chain = _chain(out, "en.atom")
    read = set().union(*(_ids(p) for p in chain))
    archives_read = set(chain[1:])
    page1 = _ids(out / "en/archive/1.atom")
    # A month of news while the reader is away: far more than the feed's 3 entries.
    store(engine, *(sample(n) for n in range(6, 40)))
    feeds.build_all(config, engine)
    # The reader follows prev-archive until it reaches a page it already read (RFC 5005 section 4.2).
    for path in _chain(out, "en.atom"):
        if path in archives_read:
            break
        read |= _ids(path)
    assert read == {guid_of(engine, n) for n in range(40)}
    assert _ids(out / "en/archive/1.atom") == page1  # a full page keeps its entries


def test_no_archive_while_the_feed_holds_everything(config, out: Path, engine) -> None:
    store(engine, *(sample(n) for n in range(7)))
    feeds.build_all(config, engine)  # default entries = 50
    assert "prev-archive" not in links(xml(out / "en.atom"))
    assert not (out / "en" / "archive").exists()
    assert len(parse(out / "en.atom").entries) == 7


def test_plan_names_feed_files() -> None:
    assert Feed("en").path == "en.atom"
    assert Feed("es", "el-salvador").path == "es/el-salvador.atom"
    assert Feed("es", "el-salvador").archive_path(3) == "es/el-salvador/archive/3.atom"


def test_websub_hub_link_and_publish_ping(tmp_path: Path, sqlite_url: str, fixture_server: FixtureServer) -> None:
    from newsletter.store import open_store

    fixture_server.routes["/hub"] = Reply("", status=204)
    config = site_config(tmp_path, sqlite_url, websub_hub=f"{fixture_server.url}/hub")
    engine = open_store(config.store_url)
    out = config.resolve("public/feeds")
    store(engine, sample(1))
    report = feeds.build(config, engine)
    assert links(xml(out / "en.atom"))["hub"] == f"{fixture_server.url}/hub"
    pings = fixture_server.requests_to("/hub")
    assert all(r.method == "POST" for r in pings)
    pinged = sorted(parse_qs(r.body.decode())["hub.url"][0] for r in pings)
    assert pinged == [f"{PUBLIC}/feeds/en.atom", f"{PUBLIC}/feeds/en/colombia.atom"]
    assert all(parse_qs(r.body.decode())["hub.mode"] == ["publish"] for r in pings)
    assert sorted(report.hub.pinged) == pinged
    # Nothing changed: no ping.
    feeds.build(config, engine)
    assert len(fixture_server.requests_to("/hub")) == 2
    # Only the changed feed is pinged.
    store(engine, sample(2, countries=("mexico",)))
    feeds.build(config, engine)
    later = [parse_qs(r.body.decode())["hub.url"][0] for r in fixture_server.requests_to("/hub")[2:]]
    assert later == [f"{PUBLIC}/feeds/en.atom", f"{PUBLIC}/feeds/en/mexico.atom"]
    engine.dispose()


def test_a_failing_hub_does_not_stop_the_feeds(tmp_path: Path, sqlite_url: str, fixture_server: FixtureServer,
                                               caplog: pytest.LogCaptureFixture) -> None:
    from newsletter.store import open_store

    fixture_server.routes["/hub"] = Reply("down", status=503)
    config = site_config(tmp_path, sqlite_url, websub_hub=f"{fixture_server.url}/hub")
    engine = open_store(config.store_url)
    store(engine, sample(1))
    report = feeds.build(config, engine)
    assert (config.resolve("public/feeds") / "en.atom").exists()
    assert report.hub.failed == {f"{PUBLIC}/feeds/en.atom": "hub answered HTTP 503",
                                 f"{PUBLIC}/feeds/en/colombia.atom": "hub answered HTTP 503"}
    assert "WebSub publish ping failed" in caplog.text
    engine.dispose()


def test_feed_command_reports_written_then_unchanged(tmp_path: Path, sqlite_url: str) -> None:
    from newsletter.store import open_store

    config = site_config(tmp_path, sqlite_url)
    engine = open_store(config.store_url)
    store(engine, sample(1), sample(2, language="es"))
    engine.dispose()
    code, first = run_json("feed", config=config.path)
    assert code == 0
    assert first["written"] == ["en.atom", "en/colombia.atom", "es.atom", "es/colombia.atom"]
    assert first["unchanged"] == []
    assert Path(first["output_dir"]) == tmp_path / "public" / "feeds"
    code, second = run_json("feed", config=config.path)
    assert code == 0 and second["written"] == [] and len(second["unchanged"]) == 4
    proc = run_cli("feed", config=config.path)
    assert proc.returncode == 0 and "0 written, 4 unchanged" in proc.stdout


def test_feed_command_with_a_broken_config_says_what_is_wrong(tmp_path: Path, sqlite_url: str) -> None:
    data = base_config(sqlite_url)
    data["feed"] = {"entries": 0}
    proc = run_cli("feed", config=write_config(tmp_path, data))
    assert proc.returncode != 0
    assert proc.stderr.strip() == "newsletter: error: feed.entries = 0: expected a number greater than 0"


def test_collect_rebuilds_the_feeds_and_an_edit_surfaces_as_an_update(
        tmp_path: Path, sqlite_url: str, fixture_server: FixtureServer) -> None:
    """Our fixture publisher, collected by the real CLI: the feeds follow, an editor's fix updates one entry."""
    from tests.support.sites import mount_sites

    english, _ = mount_sites(fixture_server)
    data = base_config(sqlite_url)
    headings = ["Crime Briefs Analysis", "Análisis de Crime Briefs"]
    data["sources"] = [
        {"name": "wp-en", "kind": "wordpress", "url": fixture_server.url, "language": "en", "analysis_headings": headings},
        {"name": "wp-es", "kind": "wordpress", "url": f"{fixture_server.url}/es", "language": "es",
         "analysis_headings": headings},
    ]
    path = write_config(tmp_path, data)
    out = tmp_path / "public" / "feeds"
    code, _ = run_json("collect", config=path)
    assert code == 0
    before = parse(out / "en.atom")
    assert xml(out / "es.atom").get("{http://www.w3.org/XML/1998/namespace}lang") == "es"
    assert (out / "en" / "colombia.atom").exists()
    river = next(e for e in before.entries if e.link.endswith("/river-port-seizure-exposes-cocaine-route/"))
    assert "River ports have become the quiet back door" in river.summary

    post = next(p for p in english.raw if p["id"] == 101)
    post["title"]["rendered"] = "River Port Seizure Exposes a Cocaine Route"
    post["modified"] = post["modified_gmt"] = "2026-10-06T09:00:00"
    code, _ = run_json("collect", config=path)
    assert code == 0
    after = parse(out / "en.atom")
    assert len(after.entries) == len(before.entries)
    edited = entry_by_id(after, river.id)
    assert edited.title == "River Port Seizure Exposes a Cocaine Route"
    assert edited.updated_parsed > river.updated_parsed and edited.published == river.published


def test_a_real_insightcrime_item_makes_a_valid_attributed_entry(real_fixtures: Path, tmp_path: Path,
                                                                   sqlite_url: str) -> None:
    """The real Venezuela RSS item (two authors in one string, nine countries, a YouTube embed)."""
    from newsletter.collect.extract import BodyRules
    from newsletter.collect.feed import parse_feed
    from newsletter.collect.source import Extraction
    from newsletter.config import SourceConfig
    from newsletter.countries import Countries
    from newsletter.store import open_store

    site = "https://insightcrime.org"
    extraction = Extraction(source=SourceConfig(name="site-en", kind="feed", url=site, language="en"),
                            countries=Countries(), rules=BodyRules.for_publication("InSight Crime"))
    data = (real_fixtures / "insightcrime_tag_venezuela_feed_excerpt.rss").read_bytes()
    [brief] = parse_feed(data, f"{site}/tag/venezuela/feed/", extraction).briefs
    config = site_config(tmp_path, sqlite_url)
    engine = open_store(config.store_url)
    store(engine, brief)
    paths = feeds.build_all(config, engine)
    engine.dispose()
    assert len(paths) == 10  # the English feed and one per country
    assert_valid_atom(real_fixtures / "rfc4287_atom.rnc", paths)
    (item,) = parse(config.resolve("public/feeds") / "en" / "venezuela.atom").entries
    assert [a.name for a in item.authors] == ["Deborah Bonello", "Jeremy McDermott"]
    assert ("el-salvador", "El Salvador") in [(t.term, t.get("label")) for t in item.tags]
    assert item.link == brief.url and item.link.startswith(f"{site}/")
    page = html.fromstring(item.content[0].value)
    assert "By Deborah Bonello and Jeremy McDermott for Crime Briefs Test" in page.text_content()
    assert not page.xpath("//iframe | //script") and "youtube.com/embed" not in item.content[0].value
    assert all(src.startswith("https://") for src in page.xpath("//img/@src | //a/@href"))
