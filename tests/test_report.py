"""`newsletter report`: the figures match the clicks made through the real `serve`, per brief over
the copies that carried it, compared with the edition's earlier mailings, and drawn with matplotlib."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from newsletter.tracking import tokens
from tests.support.cli import run_cli, run_json
from tests.support.editions import T0
from tests.support.httpserver import FixtureServer
from tests.support.serve import Served
from tests.test_tracking import KEY, Setup, person, site  # noqa: F401  (the fixture)

DAY = timedelta(days=1)


@pytest.fixture
def setup(tmp_path: Path, store_url: str, site: FixtureServer) -> Iterator[Setup]:  # noqa: F811
    s = Setup(tmp_path, store_url, site)
    yield s
    s.engine.dispose()


def click(client: httpx.Client, setup: Setup, mailing_id: int, times: int, reader: int, **match: object) -> int:
    link = next(r for r in setup.links(mailing_id) if all(getattr(r, k) == v for k, v in match.items()))
    for i in range(times):
        answer = client.get(f"/r/{tokens.make(KEY, mailing_id, link.link_no)}", headers=person(reader + i))
        assert answer.status_code == 302
    return link.brief_id


def test_report_figures_match_the_clicks_made(setup: Setup, tmp_path: Path) -> None:
    readers = {f"all{i}@example.net": () for i in range(3)} | {f"ec{i}@example.net": ("ecuador",) for i in range(2)}
    first = setup.mailing({"quito": ("ecuador",), "bogota": ("colombia",)}, readers, T0)
    served = Served(setup.path, setup.port)
    try:
        with httpx.Client(base_url=served.url) as client:
            quito = click(client, setup, first, 3, 100, kind="original", url=f"{setup.site.url}/news/quito/")
            bogota = click(client, setup, first, 1, 200, kind="original", url=f"{setup.site.url}/news/bogota/")
            click(client, setup, first, 2, 300, kind="donate")
            click(client, setup, first, 1, 400, kind="archive")
            click(client, setup, first, 1, 500, kind="other", brief_id=quito)  # a link inside the brief
            # Not people: none of these changes the figures, all are counted apart.
            donate = next(r for r in setup.links(first) if r.kind == "donate")
            client.get(f"/r/{tokens.make(KEY, first, donate.link_no)}", headers={"User-Agent": "curl/8.5.0"})
            client.head(f"/r/{tokens.make(KEY, first, 1)}", headers=person(700))
            second = setup.mailing({"lima": ("peru",)}, {}, T0 + DAY)
            click(client, setup, second, 1, 800, kind="original")
    finally:
        served.stop()

    code, figures = run_json("report", str(first), config=setup.path)
    assert code == 0, figures
    assert figures["delivered"] == 5 and figures["skipped"] == 0
    assert figures["clicks"] == 8 and figures["click_rate"] == round(8 / 5, 4)
    assert figures["donate_clicks"] == 2 and figures["donate_rate"] == round(2 / 5, 4)
    assert figures["clicks_by_kind"] == {"original": 4, "donate": 2, "archive": 1, "other": 1}
    assert figures["filtered"] == {"head": 1, "bot": 1, "scanner": 0}
    by_brief = {b["id"]: b for b in figures["briefs"]}
    assert by_brief[quito]["delivered"] == 5 and by_brief[quito]["clicks"] == 4
    assert by_brief[quito]["countries"] == ["ecuador"] and by_brief[quito]["click_rate"] == 0.8
    # Bogotá went only to the three readers who chose no country: its rate is over their copies.
    assert by_brief[bogota]["delivered"] == 3 and by_brief[bogota]["clicks"] == 1
    assert by_brief[bogota]["click_rate"] == round(1 / 3, 4)
    assert sum(d["clicks"] for d in figures["per_day"]) == 8
    assert figures["previous"]["mailings"] == 0

    code, later = run_json("report", str(second), config=setup.path)
    assert code == 0
    assert later["delivered"] == 3 and later["skipped"] == 2 and later["clicks"] == 1
    assert later["previous"]["mailings"] == 1
    assert later["previous"]["average"]["click_rate"] == round(8 / 5, 4)
    assert later["previous"]["difference"]["click_rate"] == round(round(1 / 3, 4) - 8 / 5, 4)

    table = run_cli("report", str(first), config=setup.path)
    assert table.returncode == 0 and "Brief quito" in table.stdout and "ecuador" in table.stdout

    png = tmp_path / "trend.png"
    code, trend = run_json("report", "daily-en", "--since", "2026-03-01", "--plot", str(png), config=setup.path)
    assert code == 0
    assert [m["mailing_id"] for m in trend["mailings"]] == [first, second]
    assert [m["clicks"] for m in trend["mailings"]] == [8, 1]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    code, recent = run_json("report", "daily-en", "--since", (T0 + DAY).date().isoformat(), config=setup.path)
    assert [m["mailing_id"] for m in recent["mailings"]] == [second]
    one = tmp_path / "one.png"
    assert run_cli("report", str(second), "--plot", str(one), config=setup.path).returncode == 0
    assert one.read_bytes()[:4] == b"\x89PNG"


def test_report_errors_are_one_clear_line(setup: Setup) -> None:
    proc = run_cli("report", "999", config=setup.path)
    assert proc.returncode != 0 and "no mailing with id 999" in proc.stderr
    proc = run_cli("report", "weekly-xx", config=setup.path)
    assert proc.returncode != 0 and "no edition named 'weekly-xx'" in proc.stderr
    proc = run_cli("report", "daily-en", "--since", "yesterday", config=setup.path)
    assert proc.returncode != 0 and "YYYY-MM-DD" in proc.stderr


def test_the_charts_can_be_drawn_as_svg_for_the_console() -> None:
    import io

    from newsletter.tracking import plot

    buffer = io.BytesIO()
    trend = [{"mailing_id": i, "created_at": f"2026-03-0{i}", "click_rate": 0.1 * i, "donate_rate": 0.01} for i in (1, 2)]
    plot.draw(buffer, "daily-en", trend, [{"title": "Brief quito", "countries": ["ecuador"], "click_rate": 0.3}],
              image_format="svg")
    svg = buffer.getvalue().decode()
    assert svg.startswith("<?xml") and "<svg" in svg and "daily-en" in svg
