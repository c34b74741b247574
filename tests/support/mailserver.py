"""A private Postfix relay on 127.0.0.1, as operators run one, for tests that need a real MTA.

`PostfixRelay` runs its own Postfix instance (its own config directory, queue and log, started
with `postfix -c DIR start-fg`) with a submission listener that requires STARTTLS, on a
certificate from a test CA made at start, and SASL AUTH through a private Dovecot auth service
reading a passwd-file. Everything it accepts it relays to an aiosmtpd sink, so a test sees both
the relay's own log (what Postfix accepted, from whom, with which EHLO) and what came out.

Generic on purpose (start, stop, add a user, read the log), so other tests can reuse it. The
`postfix_relay` fixture gives one per test session; without Postfix or Dovecot it skips, or
fails when NEWSLETTER_REQUIRE_POSTFIX=1.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.postfix import MailServers, first_free, require_mail_servers
from tests.support.smtpd import SMTPServer
from tests.support.tlsca import TestCA

# Fixed ports in this suite's range (10000-10999): the first free one of each range, so two
# test runs on one machine (two checkouts) each get a relay.
SUBMISSION_PORTS = range(10587, 10594)
AUTH_PORTS = range(10594, 10600)
HOSTNAME = "relay.newsletter.test"

LISTENER = """\
127.0.0.1:{port} inet n - n - - smtpd
  -o syslog_name=postfix-test/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
"""

MAIN_CF = """\
myhostname = {hostname}
mydomain = newsletter.test
mynetworks =
relayhost = [127.0.0.1]:{sink_port}
smtp_tls_security_level = none
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{auth_port}
smtpd_helo_required = yes
# Logs every client's EHLO name (with its sender and recipient), for tests to read.
smtpd_helo_restrictions = check_helo_access regexp:{dir}/helo.regexp
"""

DOVECOT_CONF = """\
base_dir = {dir}/dovecot-run
state_dir = {dir}/dovecot-state
log_path = {dir}/dovecot.log
protocols =
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  inet_listener {{
    address = 127.0.0.1
    port = {auth_port}
  }}
}}
"""


@dataclass(frozen=True)
class Accepted:
    """One message the relay accepted, as its log tells it."""

    queue_id: str
    sasl_username: str | None
    message_id: str | None
    helo: str | None
    relayed: bool  # handed on to the sink (status=sent)


class PostfixRelay:
    def __init__(self) -> None:
        self.port = first_free(SUBMISSION_PORTS)
        self.auth_port = first_free(AUTH_PORTS)
        self.hostname = HOSTNAME
        self.servers = MailServers("newsletter-postfix-")
        self.dir = self.servers.dir
        self.ca = TestCA(self.dir / "tls")
        self.sink = SMTPServer()
        self._users: dict[str, str] = {}

    @property
    def users_file(self) -> Path:
        return self.dir / "users"

    def add_user(self, name: str, password: str) -> None:
        """Let `name` log in with `password` (Dovecot reads the passwd-file at each login)."""
        self._users[name] = password
        self.users_file.write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self._users.items()))
        self.users_file.chmod(0o644)

    def start(self) -> "PostfixRelay":
        self.sink.__enter__()
        try:
            issued = self.ca.server()
            for f in (issued.cert, issued.key):
                f.chmod(0o644)
            self.add_user("newsletter-test", "unused")
            (self.dir / "helo.regexp").write_text("/^/ WARN helo seen\n")
            self.servers.start(
                main_cf=MAIN_CF.format(dir=self.dir, hostname=self.hostname, sink_port=self.sink.port,
                                       cert=issued.cert, key=issued.key, auth_port=self.auth_port),
                listeners=LISTENER.format(port=self.port),
                dovecot_conf=DOVECOT_CONF.format(dir=self.dir, auth_port=self.auth_port),
                ports=(self.port, self.auth_port))
        except BaseException:
            self.stop()
            raise
        return self

    def diagnostics(self) -> str:
        return self.servers.diagnostics()

    def stop(self) -> None:
        self.servers.stop()
        self.sink.__exit__(None, None, None)

    def log(self) -> str:
        return self.servers.log()

    def accepted(self) -> list[Accepted]:
        """Every message the submission listener accepted, in order, with what the log says of it."""
        helo_of_smtpd: dict[str, str] = {}  # an smtpd process's last RCPT's EHLO name (logged before the queue id)
        found: dict[str, dict[str, object]] = {}
        for line in self.log().splitlines():
            if m := re.search(r"submission/smtpd\[(\d+)\]: NOQUEUE: warn: RCPT from .*? helo=<([^>]*)>", line):
                helo_of_smtpd[m.group(1)] = m.group(2)
            elif m := re.search(r"submission/smtpd\[(\d+)\]: ([0-9A-F]+): client=.*?(?:sasl_username=(\S+))?$", line):
                found[m.group(2)] = {"queue_id": m.group(2), "sasl_username": m.group(3),
                                     "helo": helo_of_smtpd.get(m.group(1)), "message_id": None, "relayed": False}
            elif (m := re.search(r": ([0-9A-F]+): message-id=<([^>]*)>", line)) and m.group(1) in found:
                found[m.group(1)]["message_id"] = m.group(2)
            elif (m := re.search(r"postfix/smtp\[\d+\]: ([0-9A-F]+): to=<.*status=sent", line)) and m.group(1) in found:
                found[m.group(1)]["relayed"] = True
        return [Accepted(**values) for values in found.values()]  # type: ignore[arg-type]

    def wait_until_relayed(self, count: int, timeout: float = 60) -> None:
        """Wait until `count` messages reached the sink (the relay queues before it hands on)."""
        deadline = time.monotonic() + timeout
        while len(self.sink.recorder.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.sink.recorder.messages)} of {count} relayed\n{self.diagnostics()}")
            time.sleep(0.1)


@pytest.fixture(scope="session")
def postfix_relay() -> Iterator[PostfixRelay]:
    require_mail_servers("Postfix relay")
    relay = PostfixRelay().start()
    try:
        yield relay
    finally:
        relay.stop()
