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

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.smtpd import SMTPServer
from tests.support.tlsca import TestCA

# Fixed ports in this suite's range (10000-10999): the first free one of each range, so two
# test runs on one machine (two checkouts) each get a relay.
SUBMISSION_PORTS = range(10587, 10594)
AUTH_PORTS = range(10594, 10600)
HOSTNAME = "relay.newsletter.test"

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
  -o syslog_name=postfix-test/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
mail_owner = postfix
setgid_group = postdrop
myhostname = {hostname}
mydomain = newsletter.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
relayhost = [127.0.0.1]:{sink_port}
smtp_dns_support_level = disabled
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


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _first_free(ports: range) -> int:
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port for the Postfix relay in {ports.start}-{ports.stop - 1} on 127.0.0.1")


class PostfixRelay:
    def __init__(self) -> None:
        self.port = _first_free(SUBMISSION_PORTS)
        self.auth_port = _first_free(AUTH_PORTS)
        self.hostname = HOSTNAME
        # Not under pytest's 0700 temp folders: Postfix's daemons run as `postfix` and must reach the queue.
        self.dir = Path(tempfile.mkdtemp(prefix="newsletter-postfix-"))
        self.dir.chmod(0o755)
        self.ca = TestCA(self.dir / "tls")
        self.sink = SMTPServer()
        self._users: dict[str, str] = {}
        self._postfix: subprocess.Popen[bytes] | None = None
        self._dovecot: subprocess.Popen[bytes] | None = None

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
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        issued = self.ca.server()
        for f in (issued.cert, issued.key):
            f.chmod(0o644)
        self.add_user("newsletter-test", "unused")
        (self.dir / "dovecot.conf").write_text(DOVECOT_CONF.format(dir=self.dir, auth_port=self.auth_port))
        self._dovecot = subprocess.Popen(["dovecot", "-F", "-c", str(self.dir / "dovecot.conf")],
                                         stdout=subprocess.DEVNULL, stderr=open(self.dir / "dovecot.err", "wb"))
        config = self.dir / "postfix"
        config.mkdir()
        (config / "main.cf").write_text(MAIN_CF.format(dir=self.dir, hostname=self.hostname, sink_port=self.sink.port,
                                                       cert=issued.cert, key=issued.key, auth_port=self.auth_port))
        (config / "master.cf").write_text(MASTER_CF.format(port=self.port))
        (self.dir / "helo.regexp").write_text("/^/ WARN helo seen\n")
        for name in ("queue", "data"):
            (self.dir / name).mkdir()
        shutil.chown(self.dir / "data", "postfix")
        subprocess.run(["postfix", "-c", str(config), "check"], check=True, capture_output=True)
        self._postfix = subprocess.Popen(["postfix", "-c", str(config), "start-fg"], stdout=subprocess.DEVNULL,
                                         stderr=open(self.dir / "postfix.err", "wb"))
        deadline = time.monotonic() + 30
        while not (_listening(self.port) and _listening(self.auth_port)):
            if time.monotonic() > deadline or self._postfix.poll() is not None or self._dovecot.poll() is not None:
                raise RuntimeError(f"the Postfix relay did not start:\n{self.diagnostics()}")
            time.sleep(0.1)

    def diagnostics(self) -> str:
        parts = []
        for name in ("postfix.err", "maillog", "dovecot.err", "dovecot.log"):
            path = self.dir / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        if self._postfix is not None and self._postfix.poll() is None:
            subprocess.run(["postfix", "-c", str(self.dir / "postfix"), "stop"], capture_output=True)
            try:
                self._postfix.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._postfix.kill()
                self._postfix.wait()
        if self._dovecot is not None and self._dovecot.poll() is None:
            self._dovecot.terminate()
            self._dovecot.wait(timeout=20)
        self.sink.__exit__(None, None, None)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

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


def _missing() -> str | None:
    for tool in ("postfix", "dovecot"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return tool
    if os.geteuid() != 0:
        return "root (Postfix's master must start as root)"
    return None


@pytest.fixture(scope="session")
def postfix_relay() -> Iterator[PostfixRelay]:
    missing = _missing()
    if missing:
        if os.environ.get("NEWSLETTER_REQUIRE_POSTFIX"):
            pytest.fail(f"the Postfix relay needs {missing}, and NEWSLETTER_REQUIRE_POSTFIX is set")
        pytest.skip(f"no Postfix relay: needs {missing} (scripts/test installs postfix and dovecot-imapd)")
    relay = PostfixRelay().start()
    try:
        yield relay
    finally:
        relay.stop()
