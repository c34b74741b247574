"""Config loading: a bad config stops the program with the key, the value and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter import config as config_module
from newsletter.errors import ConfigError
from tests.support.cli import run_cli
from tests.support.configs import base_config, to_toml

ROOT = Path(__file__).resolve().parent.parent


def parse(data: dict, tmp_path: Path) -> config_module.Config:
    return config_module.parse(data, tmp_path / "config.toml")


def test_the_shipped_config_is_valid() -> None:
    config = config_module.load(ROOT / "config.toml")
    assert {s.language for s in config.sources} == {"en", "es"}
    assert config.transport.kind == "outbox"
    assert config.store.url.startswith("sqlite:///")


def test_relative_sqlite_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    config = parse(base_config("sqlite:///var/x.sqlite3"), tmp_path)
    assert config.store_url == f"sqlite:///{tmp_path / 'var' / 'x.sqlite3'}"
    assert config.resolve("outbox") == tmp_path / "outbox"


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("transport", "kind", "carrier-pigeon", "transport.kind = 'carrier-pigeon': expected one of 'outbox'"),
        ("transport", "port", "25", "transport.port = '25': expected a whole number"),
        ("transport", "port", 70000, "transport.port = 70000: expected a TCP port"),
        ("publication", "site_url", "insightcrime.org", "publication.site_url = 'insightcrime.org': expected an absolute http(s) URL"),
        ("publication", "sender", "nobody", "publication.sender = 'nobody': expected an email address"),
        ("web", "colour", "blue", "web.colour: unknown key; expected one of"),
    ],
)
def test_bad_values_name_key_value_and_expectation(tmp_path: Path, section, key, value, expected) -> None:
    data = base_config("sqlite:///x.db")
    data.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError) as info:
        parse(data, tmp_path)
    assert str(info.value).startswith(expected)


def test_bad_edition_schedule_and_timezone(tmp_path: Path) -> None:
    data = base_config("sqlite:///x.db")
    data["editions"] = [{"name": "daily-en", "language": "en", "schedule": "every morning"}]
    with pytest.raises(ConfigError, match=r"editions\[0\]\.schedule = 'every morning': expected a five-field cron"):
        parse(data, tmp_path)
    data["editions"] = [{"name": "daily-en", "language": "en", "timezone": "Mars/Olympus"}]
    with pytest.raises(ConfigError, match=r"editions\[0\]\.timezone = 'Mars/Olympus': expected an IANA time zone"):
        parse(data, tmp_path)


def test_missing_required_key_and_duplicate_names(tmp_path: Path) -> None:
    data = base_config("sqlite:///x.db")
    data["sources"] = [{"name": "a", "kind": "feed", "url": "https://a.example/feed"}]
    with pytest.raises(ConfigError, match=r"sources\[0\]\.language: missing"):
        parse(data, tmp_path)
    src = {"name": "a", "kind": "feed", "url": "https://a.example/feed", "language": "en"}
    data["sources"] = [src, src]
    with pytest.raises(ConfigError, match=r"sources\[1\]\.name = 'a': expected a name not used above"):
        parse(data, tmp_path)


def test_cli_stops_on_bad_config_before_doing_anything(tmp_path: Path) -> None:
    data = base_config(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    data["transport"]["kind"] = "fax"
    path = tmp_path / "config.toml"
    path.write_text(to_toml(data))
    proc = run_cli("status", config=path)
    assert proc.returncode != 0
    assert "transport.kind = 'fax': expected one of" in proc.stderr
    assert not (tmp_path / "store.sqlite3").exists()


def test_cli_reports_unparseable_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[publication\nname = 1")
    proc = run_cli("status", config=path)
    assert proc.returncode != 0 and "not valid TOML" in proc.stderr
    proc = run_cli("status", config=tmp_path / "missing.toml")
    assert proc.returncode != 0 and "cannot read config file" in proc.stderr


def test_config_from_environment_variable(tmp_path: Path) -> None:
    data = base_config(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    path = tmp_path / "elsewhere.toml"
    path.write_text(to_toml(data))
    proc = run_cli("status", "--json", env={"NEWSLETTER_CONFIG": str(path)})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "store.sqlite3").exists()


def test_missing_secret_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY", raising=False)
    config = parse(base_config("sqlite:///x.db"), tmp_path)
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY is not set"):
        config.secret_key()
