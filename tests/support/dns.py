"""A tiny authoritative DNS server on 127.0.0.1 for tests: TXT records from a dict.

Every name exists (NOERROR) and only the given ones have TXT data, as in a real domain that
publishes a DKIM key and nothing else that concerns a filter (no ADSP, no SPF).

Mail::DKIM and SpamAssassin look up DKIM keys in DNS; pointing them at this server lets them
verify our signatures with a test key, with no query leaving the machine.
"""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from typing import Iterator, Mapping

import dns.flags
import dns.message
import dns.rdataclass
import dns.rdatatype
import dns.rrset

# TXT character-strings are at most 255 bytes: a DKIM key record is split into several.
_TXT_CHUNK = 255


def _answer(wire: bytes, records: Mapping[str, bytes]) -> bytes | None:
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # a malformed datagram gets no answer, as from a real server
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    for question in query.question:
        record = records.get(question.name.to_text().lower())
        if record is None or question.rdtype != dns.rdatatype.TXT:
            continue  # NODATA: the name exists, with no data of that type
        chunks = " ".join('"' + record[i:i + _TXT_CHUNK].decode() + '"' for i in range(0, len(record), _TXT_CHUNK))
        response.answer.append(dns.rrset.from_text(question.name, 60, dns.rdataclass.IN, dns.rdatatype.TXT, chunks))
    return response.to_wire()


@contextmanager
def serve(records: Mapping[str, bytes]) -> Iterator[int]:
    """Answer UDP queries for `records` (fully qualified names, "sel._domainkey.example.org.") until the block ends;
    yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except socket.timeout:
                continue
            answer = _answer(wire, records)
            if answer is not None:
                sock.sendto(answer, peer)

    thread = threading.Thread(target=loop, name="test-dns", daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()
