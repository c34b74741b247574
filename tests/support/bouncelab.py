"""A real mail path for the bounce tests: a private Postfix that delivers a mailing and writes its
own delivery status notifications, and a private Dovecot that serves the bounce mailbox over IMAP.

Postfix (own config directory, `postfix -c DIR start-fg`) listens on 127.0.0.1 and hosts two
virtual domains in Maildirs: `readers.example.net` with a few known readers (any other address there is
accepted, then bounced by Postfix itself: 5.1.1 unknown user) and `bounces.example.net`, whose
`bounces+anything@` lands in one mailbox. `slow.example.net` is routed to Postfix's retry agent, so mail
there stays deferred and its sender gets a delay warning (4.4.1). Dovecot serves the mailboxes
over IMAP (plain, loopback only) to the user `bounces`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

SMTP_PORT = 11025
IMAP_PORT = 11143
READERS = ("alice", "bob", "carol")
BOUNCE_USER = "bounces"
BOUNCE_PASSWORD = "bounce-mailbox-password-0123456789"
RETURN_PATH = "bounces@bounces.example.net"
MAIL_UID = 65534  # nobody: owns the Maildirs, for Postfix's virtual agent and Dovecot alike

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
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
myhostname = mx.bouncelab.example.net
mydomain = bouncelab.example.net
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtp_dns_support_level = disabled
recipient_delimiter = +
virtual_mailbox_domains = readers.example.net, bounces.example.net
virtual_mailbox_base = {dir}/mail
virtual_mailbox_maps = texthash:{dir}/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{uid}
# Accept unknown readers, so that Postfix bounces them itself with a DSN, as a remote server would.
smtpd_reject_unlisted_recipient = no
transport_maps = texthash:{dir}/transport
delay_warning_time = 2s
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""

DOVECOT_CONF = """\
base_dir = {dir}/dovecot-run
state_dir = {dir}/dovecot-state
log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:{dir}/mail/%n
first_valid_uid = {uid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {dir}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={dir}/mail/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class BounceLab:
    def __init__(self) -> None:
        # Outside pytest's 0700 folders: Postfix's daemons and Dovecot's mail processes must reach it.
        self.dir = Path(tempfile.mkdtemp(prefix="newsletter-bouncelab-"))
        self.dir.chmod(0o755)
        self.config = self.dir / "postfix"
        self._postfix: subprocess.Popen[bytes] | None = None
        self._dovecot: subprocess.Popen[bytes] | None = None

    def start(self) -> "BounceLab":
        for port in (SMTP_PORT, IMAP_PORT):
            if _listening(port):
                raise RuntimeError(f"127.0.0.1:{port} is already taken; the bounce lab cannot listen there")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        mail = self.dir / "mail"
        mail.mkdir()
        os.chown(mail, MAIL_UID, MAIL_UID)
        (self.dir / "vmailbox").write_text(
            "".join(f"{r}@readers.example.net readers/{r}/\n" for r in READERS) + f"{RETURN_PATH} {BOUNCE_USER}/\n")
        (self.dir / "transport").write_text("slow.example.net retry:4.4.1 the remote server is busy\n")
        (self.dir / "users").write_text(f"{BOUNCE_USER}:{{PLAIN}}{BOUNCE_PASSWORD}\n")
        for name in ("vmailbox", "transport", "users"):
            (self.dir / name).chmod(0o644)
        (self.dir / "dovecot.conf").write_text(DOVECOT_CONF.format(dir=self.dir, uid=MAIL_UID, imap_port=IMAP_PORT))
        self._dovecot = subprocess.Popen(["dovecot", "-F", "-c", str(self.dir / "dovecot.conf")],
                                         stdout=subprocess.DEVNULL, stderr=open(self.dir / "dovecot.err", "wb"))
        self.config.mkdir()
        (self.config / "main.cf").write_text(MAIN_CF.format(dir=self.dir, uid=MAIL_UID))
        (self.config / "master.cf").write_text(MASTER_CF.format(port=SMTP_PORT))
        for name in ("queue", "data"):
            (self.dir / name).mkdir()
        shutil.chown(self.dir / "data", "postfix")
        subprocess.run(["postfix", "-c", str(self.config), "check"], check=True, capture_output=True)
        self._postfix = subprocess.Popen(["postfix", "-c", str(self.config), "start-fg"],
                                         stdout=subprocess.DEVNULL, stderr=open(self.dir / "postfix.err", "wb"))
        deadline = time.monotonic() + 30
        while not (_listening(SMTP_PORT) and _listening(IMAP_PORT)):
            if time.monotonic() > deadline or self._postfix.poll() is not None or self._dovecot.poll() is not None:
                raise RuntimeError(f"the bounce lab did not start:\n{self.diagnostics()}")
            time.sleep(0.1)

    def maildir(self, user: str) -> Path:
        """A reader's Maildir (`readers/alice`) or the bounce mailbox's (`bounces`)."""
        return self.dir / "mail" / user

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def flush(self) -> None:
        """Ask Postfix to try its deferred mail now (the delay warning comes from such a run)."""
        subprocess.run(["postqueue", "-c", str(self.config), "-f"], capture_output=True)

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


def _missing() -> str | None:
    for tool in ("postfix", "dovecot", "postqueue"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return tool
    if os.geteuid() != 0:
        return "root (Postfix's master must start as root)"
    return None


@pytest.fixture(scope="session")
def bounce_lab() -> Iterator[BounceLab]:
    missing = _missing()
    if missing:
        if os.environ.get("NEWSLETTER_REQUIRE_POSTFIX"):
            pytest.fail(f"the bounce lab needs {missing}, and NEWSLETTER_REQUIRE_POSTFIX is set")
        pytest.skip(f"no bounce lab: needs {missing} (scripts/test installs postfix and dovecot-imapd)")
    lab = BounceLab().start()
    try:
        yield lab
    finally:
        lab.stop()
