"""The accessibility check the browser tests rely on finds what it should and passes a clean page."""

from __future__ import annotations

from tests.support.axe import serious_violations
from tests.support.browser import browser, show

CLEAN = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Clean</title></head>
<body><main><h1>Sign up</h1><form><label for="e">Email</label><input id="e" name="email" type="email">
<button type="submit">Subscribe</button></form></main></body></html>"""

# An image with no text alternative and an input with no label: both block a screen-reader user.
BROKEN = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Broken</title></head>
<body><main><h1>Sign up</h1><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><form>
<input name="email" type="email"><button type="submit">Subscribe</button></form></main></body></html>"""


def test_a_clean_page_has_no_serious_violations(chromium: str) -> None:
    with browser(chromium) as b:
        assert serious_violations(show(b, CLEAN, 1280)) == []


def test_a_missing_alt_and_label_are_reported(chromium: str) -> None:
    with browser(chromium) as b:
        found = {v["id"] for v in serious_violations(show(b, BROKEN, 1280))}
    assert {"image-alt", "label"} <= found
