"""Our fixture publisher sites (tests/fixtures/site), served in every shape by examples/site.py's pure code."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Optional

from tests.support.httpserver import FixtureServer, Reply, Request

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_POSTS = ROOT / "tests" / "fixtures" / "site"


def example_site_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_site", ROOT / "examples" / "site.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def mount_sites(server: FixtureServer, folder: Path = FIXTURE_POSTS) -> list:
    """Serve the English site at / and the Spanish one at /es/ on `server`; returns the Site objects.

    A test edits a site's posts (`site.raw`) to play an editor changing a brief.
    """
    module = example_site_module()
    sites = [
        module.Site(json.loads((folder / "posts_en.json").read_text("utf-8")), prefix="", language="en",
                    name="Crime Briefs"),
        module.Site(json.loads((folder / "posts_es.json").read_text("utf-8")), prefix="/es", language="es",
                    name="Crime Briefs"),
    ]

    def answer(request: Request) -> Optional[Reply]:
        for site in sorted(sites, key=lambda s: -len(s.prefix)):
            found = site.answer(request.path, server.url, request.headers)
            if found is not None:
                return Reply(found.body, status=found.status, headers=found.headers, content_type=found.content_type)
        return None

    server.mounts.append(answer)
    return sites
