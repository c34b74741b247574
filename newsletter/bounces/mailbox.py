"""The bounce mailbox: read what is new, then move it out of the way or leave it for a person.

Two kinds behind one small interface: an IMAP folder (imapclient) and a local Maildir (for an
alias that delivers the return path's mail on this machine). Processed messages move to
`processed_folder`; what nobody could classify stays where a person looks, marked so that the next
fetch does not read it again (IMAP: a keyword; Maildir: the "flagged" flag). Two fetches at once may
read the same message: the store, not the mailbox, makes sure it is applied once.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from newsletter.bounces.parse import MAX_MESSAGE_BYTES
from newsletter.config import BouncesConfig, Config
from newsletter.errors import NewsletterError

# IMAP keyword on a message left for a person (not a bounce, complaint or auto-reply of ours).
LEFT_KEYWORD = b"$NewsletterLeft"


class MailboxError(NewsletterError):
    """The bounce mailbox cannot be reached or read."""


@dataclass(frozen=True)
class Fetched:
    ref: str  # the message's handle in its mailbox (IMAP UID, Maildir file name)
    raw: bytes  # empty when the message is larger than MAX_MESSAGE_BYTES
    size: int


class Mailbox(Protocol):
    def messages(self, limit: int) -> Iterator[Fetched]: ...
    def processed(self, ref: str) -> None: ...
    def left(self, ref: str) -> None: ...
    def close(self) -> None: ...


def open_mailbox(config: Config) -> Mailbox:
    bounces = config.bounces
    if bounces is None:
        raise MailboxError("bounces: not configured; add a [bounces] section (see the README's Bounces section)")
    if bounces.kind == "maildir":
        return MaildirBox(config.resolve(bounces.path), bounces.processed_folder)
    return ImapBox.connect(bounces, config)


class MaildirBox:
    """A Maildir: new mail in `new/`; processed mail moves to the Maildir++ folder `.{processed}`."""

    def __init__(self, path: Path, processed_folder: str) -> None:
        if not (path / "new").is_dir() or not (path / "cur").is_dir():
            raise MailboxError(f"bounces.path = {str(path)!r}: not a Maildir (expected its new/ and cur/ folders)")
        self.path = path
        self.target = path / f".{processed_folder}"

    def messages(self, limit: int) -> Iterator[Fetched]:
        count = 0
        for folder in ("new", "cur"):
            for name in sorted(os.listdir(self.path / folder)):
                if count >= limit:
                    return
                base, _, info = name.partition(":")
                flags = info.partition(",")[2] if info else ""
                if name.startswith(".") or "S" in flags or "F" in flags:
                    continue  # hidden, read by a person, or left for one
                fetched = self._read(self.path / folder / name)
                if fetched is not None:
                    count += 1
                    yield fetched

    @staticmethod
    def _read(path: Path) -> Fetched | None:
        try:
            with path.open("rb") as f:
                raw = f.read(MAX_MESSAGE_BYTES + 1)
                size = os.fstat(f.fileno()).st_size
        except FileNotFoundError:
            return None  # another fetch moved it
        return Fetched(str(path), raw if size <= MAX_MESSAGE_BYTES else b"", size)

    def _move(self, ref: str, folder: Path, flags: str) -> None:
        source = Path(ref)
        base = source.name.partition(":")[0]
        folder.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(source, folder / f"{base}:2,{flags}")
        except FileNotFoundError:
            pass  # another fetch got there first

    def processed(self, ref: str) -> None:
        for sub in ("new", "cur", "tmp"):
            (self.target / sub).mkdir(parents=True, exist_ok=True)
        self._move(ref, self.target / "cur", "S")

    def left(self, ref: str) -> None:
        self._move(ref, self.path / "cur", "F")

    def close(self) -> None:
        pass


class ImapBox:
    """An IMAP folder, read with BODY.PEEK so a person still sees unread what is left for them."""

    def __init__(self, client: IMAPClient, bounces: BouncesConfig) -> None:
        self.client = client
        self.bounces = bounces
        self._folder_ready = False

    @classmethod
    def connect(cls, bounces: BouncesConfig, config: Config) -> "ImapBox":
        password = os.environ.get(bounces.password_env, "")  # present: the config's load checked it
        context = ssl.create_default_context()
        if bounces.ca_file:
            context.load_verify_locations(cafile=str(config.resolve(bounces.ca_file)))
        where = f"{bounces.host}:{bounces.port}"
        try:
            client = IMAPClient(bounces.host, port=bounces.port, ssl=bounces.tls == "ssl",
                                ssl_context=context if bounces.tls == "ssl" else None,
                                timeout=bounces.timeout_seconds)
            if bounces.tls == "starttls":
                client.starttls(context)
        except ssl.SSLError as exc:
            raise MailboxError(f"TLS with the bounce mailbox failed ({exc.reason or exc}): check bounces.tls, or "
                               f"give the server's CA in bounces.ca_file; {where}") from exc
        except (OSError, IMAPClientError) as exc:
            raise MailboxError(f"cannot connect to the bounce mailbox ({exc}): check bounces.host and "
                               f"bounces.port; {where}") from exc
        try:
            client.login(bounces.username, password)
            client.select_folder(bounces.mailbox)
        except IMAPClientError as exc:
            client.shutdown()
            raise MailboxError(f"the bounce mailbox refused us ({exc}): check bounces.username, "
                               f"{bounces.password_env} and bounces.mailbox; {where}") from exc
        return cls(client, bounces)

    def messages(self, limit: int) -> Iterator[Fetched]:
        uids = self.client.search(["NOT", "DELETED", "NOT", "SEEN", "NOT", "KEYWORD", LEFT_KEYWORD.decode()])
        uids = sorted(uids)[:limit]
        for start in range(0, len(uids), 50):
            chunk = uids[start:start + 50]
            sizes = self.client.fetch(chunk, ["RFC822.SIZE"])
            small = [u for u in chunk if sizes.get(u, {}).get(b"RFC822.SIZE", 0) <= MAX_MESSAGE_BYTES]
            bodies = self.client.fetch(small, ["BODY.PEEK[]"]) if small else {}
            for uid in chunk:
                if uid not in sizes:
                    continue  # expunged by another fetch meanwhile
                size = sizes[uid].get(b"RFC822.SIZE", 0)
                raw = bodies.get(uid, {}).get(b"BODY[]", b"") if uid in small else b""
                if uid in small and not raw:
                    continue
                yield Fetched(str(uid), raw, size)

    def processed(self, ref: str) -> None:
        folder = self.bounces.processed_folder
        if not self._folder_ready:
            if not self.client.folder_exists(folder):
                try:
                    self.client.create_folder(folder)
                except IMAPClientError:
                    pass  # created by another fetch meanwhile
            self._folder_ready = True
        uid = int(ref)
        if self.client.has_capability("MOVE"):
            self.client.move([uid], folder)
        else:
            self.client.copy([uid], folder)
            self.client.delete_messages([uid])
            if self.client.has_capability("UIDPLUS"):
                self.client.uid_expunge([uid])
            else:
                self.client.expunge()

    def left(self, ref: str) -> None:
        self.client.add_flags([int(ref)], [LEFT_KEYWORD])

    def close(self) -> None:
        try:
            self.client.logout()
        except (OSError, IMAPClientError):
            self.client.shutdown()
