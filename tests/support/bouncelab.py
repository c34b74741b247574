"""A real mail path for the bounce tests: a private Postfix that delivers a mailing and writes its
own delivery status notifications, and a private Dovecot that serves the bounce mailbox over IMAP.

Postfix listens on 127.0.0.1 and hosts two virtual domains in Maildirs: `readers.example.net`
with a few known readers (any other address there is accepted, then bounced by Postfix itself:
5.1.1 unknown user) and `bounces.example.net`, whose `bounces+anything@` lands in one mailbox.
`slow.example.net` is routed to Postfix's retry agent, so mail there stays deferred and its sender
gets a delay warning (4.4.1). Dovecot serves the mailboxes over IMAP (plain, loopback only) to the
user `bounces`. Both run through `tests/support/postfix.py`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.postfix import MailServers, first_free, require_mail_servers

# Ports in this suite's range (11000-11999): the first free one of each range.
SMTP_PORTS = range(11025, 11035)
IMAP_PORTS = range(11143, 11153)
READERS = ("alice", "bob", "carol")
BOUNCE_USER = "bounces"
BOUNCE_PASSWORD = "bounce-mailbox-password-0123456789"
RETURN_PATH = "bounces@bounces.example.net"
MAIL_UID = 65534  # nobody: owns the Maildirs, for Postfix's virtual agent and Dovecot alike

LISTENER = "127.0.0.1:{port} inet n - n - - smtpd\n"

MAIN_CF = """\
myhostname = mx.bouncelab.example.net
mydomain = bouncelab.example.net
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
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


class BounceLab:
    def __init__(self) -> None:
        self.smtp_port = first_free(SMTP_PORTS)
        self.imap_port = first_free(IMAP_PORTS)
        self.servers = MailServers("newsletter-bouncelab-")
        self.dir = self.servers.dir

    def start(self) -> "BounceLab":
        try:
            mail = self.dir / "mail"
            mail.mkdir()
            os.chown(mail, MAIL_UID, MAIL_UID)
            (self.dir / "vmailbox").write_text("".join(f"{r}@readers.example.net readers/{r}/\n" for r in READERS)
                                               + f"{RETURN_PATH} {BOUNCE_USER}/\n")
            (self.dir / "transport").write_text("slow.example.net retry:4.4.1 the remote server is busy\n")
            (self.dir / "users").write_text(f"{BOUNCE_USER}:{{PLAIN}}{BOUNCE_PASSWORD}\n")
            for name in ("vmailbox", "transport", "users"):
                (self.dir / name).chmod(0o644)
            self.servers.start(main_cf=MAIN_CF.format(dir=self.dir, uid=MAIL_UID),
                               listeners=LISTENER.format(port=self.smtp_port),
                               dovecot_conf=DOVECOT_CONF.format(dir=self.dir, uid=MAIL_UID, imap_port=self.imap_port),
                               ports=(self.smtp_port, self.imap_port))
        except BaseException:
            self.stop()
            raise
        return self

    def maildir(self, user: str) -> Path:
        """A reader's Maildir (`readers/alice`) or the bounce mailbox's (`bounces`)."""
        return self.dir / "mail" / user

    def flush(self) -> None:
        """Ask Postfix to try its deferred mail now (the delay warning comes from such a run)."""
        self.servers.flush()

    def diagnostics(self) -> str:
        return self.servers.diagnostics()

    def stop(self) -> None:
        self.servers.stop()


@pytest.fixture(scope="session")
def bounce_lab() -> Iterator[BounceLab]:
    require_mail_servers("bounce lab")
    lab = BounceLab().start()
    try:
        yield lab
    finally:
        lab.stop()
