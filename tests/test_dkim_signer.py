"""The DKIM signer's canonicalisation (RFC 6376's own example) and the keys the config accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from newsletter.config import load
from newsletter.digest.dkim import ED25519_SHA256, RSA_SHA256, DkimKeyError, load_key, relaxed_header, simple_body
from newsletter.errors import ConfigError
from tests.support.configs import base_config, write_config
from tests.support.mailcheck import make_dkim_key, make_ed25519_key


def test_relaxed_headers_and_simple_body_as_in_rfc_6376_section_3_4_5() -> None:
    assert relaxed_header(b"A", b" X") == b"a:X\r\n"
    assert relaxed_header(b"B ", b" Y\t\r\n\tZ  ") == b"b:Y Z\r\n"
    assert simple_body(b" C \r\nD \t E\r\n\r\n\r\n") == b" C \r\nD \t E\r\n"
    assert simple_body(b"") == b"\r\n"


def _pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_keys_that_cannot_sign_their_algorithm_are_refused_with_the_reason(tmp_path: Path) -> None:
    short = subprocess.run(["openssl", "genrsa", "768"], capture_output=True, check=True).stdout
    with pytest.raises(DkimKeyError, match="768 bits; expected 1024 or more"):
        load_key(short, RSA_SHA256, "s")
    with pytest.raises(DkimKeyError, match="expected an Ed25519 key"):
        load_key(_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)), ED25519_SHA256, "s")
    with pytest.raises(DkimKeyError, match="expected an RSA key"):
        load_key(_pem(ec.generate_private_key(ec.SECP256R1())), RSA_SHA256, "s")
    with pytest.raises(DkimKeyError, match="not an unencrypted private key"):
        load_key(b"-----BEGIN NOTHING-----", RSA_SHA256, "s")


def test_the_config_checks_both_keys_at_load(tmp_path: Path, sqlite_url: str) -> None:
    rsa_key, ed_key = make_dkim_key(tmp_path), make_ed25519_key(tmp_path)
    data = base_config(sqlite_url)
    data["dkim"] = {"selector": "s1", "domain": "example.org", "private_key_path": str(rsa_key.path),
                    "ed25519_selector": "ed", "ed25519_private_key_path": str(ed_key.path)}
    assert load(write_config(tmp_path, data)).dkim.ed25519_selector == "ed"
    data["dkim"]["ed25519_private_key_path"] = str(rsa_key.path)
    with pytest.raises(ConfigError, match="dkim.ed25519_private_key_path = .*expected an Ed25519 key"):
        load(write_config(tmp_path, data))
    data["dkim"] = {"ed25519_selector": "ed", "ed25519_private_key_path": str(ed_key.path)}
    with pytest.raises(ConfigError, match="second signature"):
        load(write_config(tmp_path, data))
    data["dkim"] = {"selector": "s1", "domain": "example.org", "private_key_path": str(rsa_key.path),
                    "ed25519_selector": "ed"}
    with pytest.raises(ConfigError, match="expected both set"):
        load(write_config(tmp_path, data))
