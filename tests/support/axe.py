"""axe-core accessibility checks on a Playwright page, from the copy npm installed in tests/browser.

The script is read from the local file and injected, so a check never reaches the network
(scripts/test runs `npm ci --prefix tests/browser` when node_modules is absent)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

AXE = Path(__file__).resolve().parents[1] / "browser" / "node_modules" / "axe-core" / "axe.min.js"
# What a reader relying on assistive technology cannot get past; minor and moderate issues are reported
# by axe too but do not fail a test.
BLOCKING = ("serious", "critical")


def serious_violations(page: Page) -> list[dict]:
    """axe's violations of impact serious or critical on `page` as it is now (each axe's own dict:
    id, impact, help, nodes...); an empty list when the page passes."""
    if not AXE.is_file():
        raise FileNotFoundError(f"{AXE} is missing: run `npm ci --prefix tests/browser`")
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v.get("impact") in BLOCKING]
