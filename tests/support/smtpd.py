"""Real SMTP servers on 127.0.0.1 (aiosmtpd) that record what they accept and misbehave on demand."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Behaviour:
    # RCPT answers for chosen recipients: address -> (reply, how many times; 0 = always).
    refuse: dict[str, tuple[str, int]] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering DATA (a slow server)
    drop_every: int = 0  # close the connection, unanswered, at every Nth MAIL FROM
    pipelining: bool = True  # offer PIPELINING (RFC 2920) in the EHLO answer


class Recorder:
    """The handler: keeps every accepted message and applies the behaviour."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.messages: list[tuple[str, bytes]] = []
        self.times: list[float] = []  # time.monotonic() of each accepted message
        self.refusals: dict[str, int] = {}
        self.mails = 0
        self.drops = 0
        self.ehlo_names: list[str] = []  # the name each client greeted with
        self.peer_certs: list[dict] = []  # client certificates presented over TLS
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
        session.host_name = hostname
        with self.lock:
            self.ehlo_names.append(hostname)
            if session.ssl:
                peer = server.transport.get_extra_info("peercert")
                if peer:
                    self.peer_certs.append(peer)
        if self.behaviour.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        with self.lock:
            self.mails += 1
            drop = self.behaviour.drop_every and self.mails % self.behaviour.drop_every == 0
            if drop:
                self.drops += 1
        if drop:
            server.transport.close()
            return None
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        rule = self.behaviour.refuse.get(address)
        if rule:
            reply, times = rule
            with self.lock:
                seen = self.refusals.get(address, 0)
                if times == 0 or seen < times:
                    self.refusals[address] = seen + 1
                    if reply.startswith("421"):
                        asyncio.get_running_loop().call_soon(server.transport.close)
                    return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.behaviour.delay:
            await asyncio.sleep(self.behaviour.delay)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.messages.append((rcpt, envelope.original_content or envelope.content))
                self.times.append(time.monotonic())
        return "250 2.0.0 queued"

    def recipients(self) -> list[str]:
        with self.lock:
            return [r for r, _ in self.messages]

    def parsed(self, recipient: str) -> Message:
        with self.lock:
            data = next(m for r, m in self.messages if r == recipient)
        return email.message_from_bytes(data)


class SMTPServer:
    def __init__(self, behaviour: Behaviour | None = None, *, tls: ssl.SSLContext | None = None,
                 implicit_tls: bool = False, login: tuple[str, str] | None = None) -> None:
        self.recorder = Recorder(behaviour or Behaviour())
        self.port = free_port()
        kwargs: dict[str, object] = {}
        if tls is not None and not implicit_tls:
            kwargs.update(tls_context=tls, require_starttls=True)
        if implicit_tls:
            kwargs["ssl_context"] = tls
        if login is not None:
            def authenticator(server, session, envelope, mechanism, data):
                ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == login
                return AuthResult(success=ok, handled=False)
            kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=tls is not None)
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> "SMTPServer":
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def self_signed(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and the cert file to trust."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / "cert.pem"
    key_path = folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path
