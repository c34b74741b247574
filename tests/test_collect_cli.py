"""`newsletter collect` in a subprocess: the JSON, the table, exit codes, and `status` showing errors."""

from __future__ import annotations

from tests.support.cli import run_cli, run_json
from tests.support.httpserver import FixtureServer, Reply
from tests.support.sites import mount_sites


def test_collect_json_exit_codes_and_status(config_file, fixture_server: FixtureServer):
    mount_sites(fixture_server)
    fixture_server.routes["/broken/feed/"] = Reply("<rss><channel><title>x</tit", content_type="application/rss+xml")
    url = fixture_server.url
    path = config_file(sources=[
        {"name": "wp-en", "kind": "wordpress", "url": url, "language": "en", "analysis_headings": ["Crime Briefs Analysis"]},
        {"name": "atom-es", "kind": "feed", "url": url + "/es/feed/atom/", "language": "es"},
    ])
    code, data = run_json("collect", config=path)
    assert code == 0
    assert data == {"sources": [
        {"name": "wp-en", "new": 5, "updated": 0, "unchanged": 0, "withdrawn": 0, "error": None, "requests": 1,
         "skipped": [], "deferred_until": None},
        {"name": "atom-es", "new": 3, "updated": 0, "unchanged": 0, "withdrawn": 0, "error": None, "requests": 1,
         "skipped": [], "deferred_until": None},
    ]}

    broken = config_file(sources=[
        {"name": "wp-en", "kind": "wordpress", "url": url, "language": "en"},
        {"name": "broken", "kind": "feed", "url": url + "/broken/feed/", "language": "en", "retries": 0},
    ])
    proc = run_cli("collect", config=broken)
    assert proc.returncode == 1
    # The table on stderr names every source; the failure is one line of its own.
    assert "wp-en" in proc.stderr and "broken" in proc.stderr
    # The reason first, the URL (without its scheme) after it.
    assert "newsletter: source broken failed: not a readable RSS or Atom feed (" in proc.stderr
    assert f"): {url.removeprefix('http://')}/broken/feed/\n" in proc.stderr
    assert proc.stdout == ""

    code, status = run_json("status", config=broken)
    rows = {s["name"]: s for s in status["sources"]}
    assert rows["wp-en"]["briefs"] == 5 and rows["wp-en"]["last_error"] is None
    assert "not a readable RSS or Atom feed" in rows["broken"]["last_error"]
    assert rows["broken"]["last_success_at"] is None
    table = run_cli("status", config=broken)
    assert table.returncode == 0 and "broken" in table.stdout and "readable" in table.stdout
