"""The sending side of the config is checked once, completely, when it loads: every rule a send
worker, a message or a transport would meet later stops the program first, with the key, the
value and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from newsletter import config as config_module
from newsletter.errors import ConfigError
from newsletter.send.transports import open_transport
from tests.support.cli import run_cli
from tests.support.configs import base_config, write_config
from tests.support.tlsca import TestCA


def load(tmp_path: Path, transport: dict[str, Any] | None = None, **sections: dict[str, Any]) -> config_module.Config:
    data = base_config(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    if transport is not None:
        data["transport"] = transport
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_module.load(write_config(tmp_path, data))


@pytest.mark.parametrize("transport, expected", [
    ({"kind": "smtp", "starttls": True, "ssl": True}, "transport.starttls and transport.ssl are both true"),
    ({"kind": "smtp", "username": "news"}, "transport.password_env: missing"),
    ({"kind": "smtp", "username": "news", "password_env": "NL_TEST_UNSET"},
     "transport.password_env = 'NL_TEST_UNSET': the environment variable NL_TEST_UNSET is not set"),
    ({"kind": "smtp", "ehlo_name": "192.0.2.7"}, "transport.ehlo_name = '192.0.2.7': expected a host name"),
    ({"kind": "smtp", "ehlo_name": "[192.0.2.7]"}, "not an IP literal"),
    ({"kind": "smtp", "ehlo_name": "mailhost"}, "transport.ehlo_name = 'mailhost': expected a fully qualified"),
    ({"kind": "smtp", "ca_file": "ca.pem"}, "transport.ca_file = 'ca.pem': set, but neither transport.starttls"),
    ({"kind": "smtp", "starttls": True, "ca_file": "missing.pem"}, "transport.ca_file = 'missing.pem': cannot read"),
    ({"kind": "smtp", "starttls": True, "client_key": "k.pem"}, "transport.client_cert: missing"),
    ({"kind": "postmark"}, "transport.api_token_env: missing"),
    ({"kind": "sendgrid", "api_token_env": "NL_TEST_UNSET"}, "the environment variable NL_TEST_UNSET is not set"),
    ({"kind": "mailgun", "api_token_env": "NL_TEST_TOKEN"}, "transport.domain: missing"),
])
def test_transport_rules_fail_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transport: dict[str, Any],
                                      expected: str) -> None:
    monkeypatch.delenv("NL_TEST_UNSET", raising=False)
    monkeypatch.setenv("NL_TEST_TOKEN", "t0ken")
    with pytest.raises(ConfigError) as info:
        load(tmp_path, transport)
    assert expected in str(info.value)


def test_certificate_files_must_be_what_they_say(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    client = ca.client("news.example.org")
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"transport.ca_file = '.*notes.txt': not a PEM bundle of CA certificates"):
        load(tmp_path, {"kind": "smtp", "starttls": True, "ca_file": str(not_pem)})
    with pytest.raises(ConfigError, match=r"transport.client_cert = .*: expected a PEM certificate and its"):
        load(tmp_path, {"kind": "smtp", "ssl": True, "client_cert": str(client.cert), "client_key": str(ca.cert)})
    config = load(tmp_path, {"kind": "smtp", "ssl": True, "ca_file": str(ca.cert), "client_cert": str(client.cert),
                             "client_key": str(client.key)})
    transport = open_transport(config)
    assert transport.ehlo_name == "example.org"  # the sender's domain
    assert transport.tls_context.cert_store_stats()["x509_ca"] >= 1


@pytest.mark.parametrize("key, value", [
    ("sender", "Crime Briefs <news@example>"),
    ("sender", "news@example.org, other@example.org"),
    ("reply_to", "desk at example.org"),
    ("unsubscribe_mailto", "unsubscribe@"),
])
def test_addresses_are_checked_by_email_validator(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, publication={key: value})
    assert str(info.value).startswith(f"publication.{key} = {value!r}: expected")


def _pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL
                             if isinstance(key, rsa.RSAPrivateKey) else serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_dkim_key_is_read_parsed_and_matched_to_rsa_sha256_at_load(tmp_path: Path) -> None:
    good = tmp_path / "dkim.pem"
    good.write_bytes(_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    edwards = tmp_path / "ed25519.pem"
    edwards.write_bytes(_pem(ed25519.Ed25519PrivateKey.generate()))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    dkim = {"selector": "mail", "domain": "example.org"}
    with pytest.raises(ConfigError, match="dkim.private_key_path: missing"):
        load(tmp_path, dkim=dkim)
    with pytest.raises(ConfigError, match=r"dkim.private_key_path = 'absent.pem': cannot read"):
        load(tmp_path, dkim={**dkim, "private_key_path": "absent.pem"})
    for wrong in (edwards, garbage):
        with pytest.raises(ConfigError, match=r"dkim.private_key_path = .*: .*\(messages are signed rsa-sha256\)"):
            load(tmp_path, dkim={**dkim, "private_key_path": str(wrong)})
    with pytest.raises(ConfigError, match=r"dkim.domain = 'example': expected a fully qualified"):
        load(tmp_path, dkim={**dkim, "domain": "example", "private_key_path": str(good)})
    assert load(tmp_path, dkim={**dkim, "private_key_path": str(good)}).dkim.selector == "mail"


def test_send_stops_on_a_missing_password_before_it_creates_a_mailing(tmp_path: Path) -> None:
    data = base_config(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    data["editions"] = [{"name": "daily-en", "language": "en"}]
    data["transport"] = {"kind": "smtp", "port": 2, "username": "news", "password_env": "NL_TEST_UNSET"}
    path = write_config(tmp_path, data)
    proc = run_cli("send", "daily-en", config=path, env={"NL_TEST_UNSET": ""})
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("newsletter: error: transport.password_env = 'NL_TEST_UNSET': the environment "
                                   "variable NL_TEST_UNSET is not set; expected it to hold the SMTP password of 'news'")
    assert not (tmp_path / "store.sqlite3").exists()
