"""Write config files for tests: a minimal valid base that each test extends."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def to_toml(data: dict[str, Any]) -> str:
    lines: list[str] = []
    for section, body in data.items():
        if isinstance(body, list):
            for item in body:
                lines.append(f"[[{section}]]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in item.items()]
                lines.append("")
        else:
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in body.items()]
            lines.append("")
    return "\n".join(lines)


def base_config(store_url: str) -> dict[str, Any]:
    return {
        "publication": {
            "name": "Crime Briefs Test",
            "site_url": "https://briefs.example.org",
            "public_url": "https://news.example.org",
            "sender": "Crime Briefs <news@example.org>",
            "postal_address": "1 Test Street, Testville",
            "donate_url": "https://briefs.example.org/donate/",
        },
        "store": {"url": store_url},
        "feed": {"output_dir": "public/feeds"},
        "transport": {"kind": "outbox", "outbox_dir": "outbox"},
    }


def write_config(directory: Path, data: dict[str, Any]) -> Path:
    path = directory / "config.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    return path
