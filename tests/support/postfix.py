"""A private Postfix and Dovecot pair on 127.0.0.1, for tests that need real mail servers.

`MailServers` owns one folder (outside pytest's 0700 temp folders: Postfix's daemons run as
`postfix` and Dovecot's mail processes as another user, and both must reach it), one Postfix
instance (its own config directory, queue and log, `postfix -c DIR start-fg`) and one Dovecot
(`dovecot -F -c FILE`). The relay harness (`mailserver.py`) and the bounce harness (`bouncelab.py`)
give it their own main.cf, listeners and dovecot.conf.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

# The services a Postfix instance of ours may need, after the listeners each harness adds.
SERVICES = """\
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
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

# What every instance's main.cf starts with: its own queue, data and log, on loopback, no DNS.
MAIN_BASE = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtp_dns_support_level = disabled
"""


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def first_free(ports: range) -> int:
    """The first port of `ports` free on 127.0.0.1, so two test runs on one machine each get theirs."""
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1} on 127.0.0.1 for the test mail servers")


class MailServers:
    def __init__(self, prefix: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.dir.chmod(0o755)
        self.config = self.dir / "postfix"
        self._postfix: subprocess.Popen[bytes] | None = None
        self._dovecot: subprocess.Popen[bytes] | None = None

    def start(self, *, main_cf: str, listeners: str, dovecot_conf: str, ports: tuple[int, ...]) -> None:
        """Start Dovecot, then Postfix with MAIN_BASE + `main_cf` and `listeners` + SERVICES; return
        once every port in `ports` answers (RuntimeError with the logs otherwise)."""
        (self.dir / "dovecot.conf").write_text(dovecot_conf)
        self._dovecot = subprocess.Popen(["dovecot", "-F", "-c", str(self.dir / "dovecot.conf")],
                                         stdout=subprocess.DEVNULL, stderr=open(self.dir / "dovecot.err", "wb"))
        self.config.mkdir()
        (self.config / "main.cf").write_text(MAIN_BASE.format(dir=self.dir) + main_cf)
        (self.config / "master.cf").write_text(listeners + SERVICES)
        for name in ("queue", "data"):
            (self.dir / name).mkdir()
        shutil.chown(self.dir / "data", "postfix")
        subprocess.run(["postfix", "-c", str(self.config), "check"], check=True, capture_output=True)
        self._postfix = subprocess.Popen(["postfix", "-c", str(self.config), "start-fg"],
                                         stdout=subprocess.DEVNULL, stderr=open(self.dir / "postfix.err", "wb"))
        deadline = time.monotonic() + 30
        while not all(listening(port) for port in ports):
            if time.monotonic() > deadline or self._postfix.poll() is not None or self._dovecot.poll() is not None:
                raise RuntimeError(f"the mail servers did not start:\n{self.diagnostics()}")
            time.sleep(0.1)

    def flush(self) -> None:
        """Ask Postfix to try its deferred mail now."""
        subprocess.run(["postqueue", "-c", str(self.config), "-f"], capture_output=True)

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def diagnostics(self) -> str:
        parts = []
        for name in ("postfix.err", "maillog", "dovecot.err", "dovecot.log"):
            path = self.dir / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        if self._postfix is not None and self._postfix.poll() is None:
            subprocess.run(["postfix", "-c", str(self.config), "stop"], capture_output=True)
            try:
                self._postfix.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._postfix.kill()
                self._postfix.wait()
        if self._dovecot is not None and self._dovecot.poll() is None:
            self._dovecot.terminate()
            self._dovecot.wait(timeout=20)
        shutil.rmtree(self.dir, ignore_errors=True)


def require_mail_servers(what: str) -> None:
    """Skip without Postfix, Dovecot or root; fail instead when NEWSLETTER_REQUIRE_POSTFIX is set."""
    missing = next((tool for tool in ("postfix", "postqueue", "dovecot")
                    if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()), None)
    if missing is None and os.geteuid() != 0:
        missing = "root (Postfix's master must start as root)"
    if missing is None:
        return
    if os.environ.get("NEWSLETTER_REQUIRE_POSTFIX"):
        pytest.fail(f"{what} needs {missing}, and NEWSLETTER_REQUIRE_POSTFIX is set")
    pytest.skip(f"no {what}: needs {missing} (scripts/test installs postfix and dovecot-imapd)")
