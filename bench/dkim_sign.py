"""DKIM benchmark: what signing adds to each copy, against the same run's references.

    .venv/bin/python bench/dkim_sign.py [--copies 2000] [--rounds 3]

Builds `--copies` 40 KB copies of a 15-brief mailing unsigned, signed (RSA-2048), and signed twice
(RSA-2048 and Ed25519, RFC 8463); the signing cost is the difference per copy. References in the
same process and minute: one bare RSA-2048 PKCS#1 v1.5 signature through OpenSSL (`cryptography`),
the floor of any RSA signer, and dkimpy's pure-Python signing of the same copy (what we used
before). CPU time of this process; the load average is printed with each round.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519, padding  # noqa: E402

from bench import render as render_bench  # noqa: E402
from bench import sample  # noqa: E402
from newsletter.digest import MessageFactory  # noqa: E402
from newsletter.recipients import Recipient  # noqa: E402


def per_copy(factory: MessageFactory, recipients: list[Recipient]) -> float:
    started = time.process_time()
    for recipient in recipients:
        factory.build(recipient)
    return (time.process_time() - started) / len(recipients)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("NEWSLETTER_SECRET_KEY", "bench-secret-key-0123456789abcdefghijkl")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        key = folder / "dkim.pem"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        ed = folder / "ed25519.pem"
        ed.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        plain = render_bench.config(folder, None)
        signed = render_bench.config(folder, key)
        both = sample.write_config(folder / "both.toml", tables=(
            f'[dkim]\nselector = "mail"\ndomain = "example.org"\nprivate_key_path = "{key}"\n'
            f'ed25519_selector = "ed"\ned25519_private_key_path = "{ed}"\n'))
        content, _ = render_bench.render(plain, 15, 1)
        recipients = [Recipient(i, f"reader{i}@example.com", f"Reader {i}") for i in range(1, args.copies + 1)]
        rsa_key = serialization.load_pem_private_key(key.read_bytes(), password=None)
        copy = MessageFactory(plain, content).build(recipients[0])
        import dkim as dkimpy

        print(f"python {sys.version.split()[0]}, copies of {len(copy) / 1000:.1f} KB, CPU time of one process")
        for round_ in range(1, args.rounds + 1):
            base = per_copy(MessageFactory(plain, content), recipients)
            rsa_cost = per_copy(MessageFactory(signed, content), recipients) - base
            both_cost = per_copy(MessageFactory(both, content), recipients) - base
            started = time.process_time()
            for _ in range(len(recipients)):
                rsa_key.sign(copy[:600], padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg, union-attr]
            floor = (time.process_time() - started) / len(recipients)
            sample_n = max(20, len(recipients) // 50)
            pem = key.read_bytes()
            started = time.process_time()
            for _ in range(sample_n):
                dkimpy.sign(copy, b"mail", b"example.org", pem)
            before = (time.process_time() - started) / sample_n
            print(f"round {round_} (load {os.getloadavg()[0]:.2f}): signing adds {rsa_cost * 1e3:.3f} ms a copy "
                  f"(RSA-2048), {both_cost * 1e3:.3f} ms with Ed25519 too; bare RSA sign {floor * 1e3:.3f} ms "
                  f"(ours {rsa_cost / floor:.2f}x of it); dkimpy {before * 1e3:.2f} ms ({before / rsa_cost:.1f}x ours)")


if __name__ == "__main__":
    main()
