"""Sending benchmark: our SMTP rate against Postfix's smtp-source, memory from 10k to 1M, HTTP batches.

    .venv/bin/python bench/send.py [--messages 100000] [--memory-sizes 10000,100000,1000000]
                                   [--memory-seconds 40] [--http 100000]

1. Starts Postfix's smtp-sink on 127.0.0.1 (only that tool, not Postfix), renders a real
   mailing of about 40 KB with the digest code, records one delivery per subscriber, and
   sends `--messages` personalised copies with `send_mailing` over SMTP ([transport].connections
   = 4 worker processes). Then, against the same sink, `smtp-source -d -s 4 -l 40000 -m N`.
   Prints both rates and the ratio, and the peak RSS of the worker processes.
2. For each of `--memory-sizes` subscribers in the store: creates the mailing's deliveries and
   sends to the sink for `--memory-seconds`, then pauses it; prints the peak RSS of the workers
   (sum and largest) and of the process that created the deliveries.
3. Sends `--http` recipients through the Postmark and SendGrid transports to a local stub of
   their batch endpoints; prints calls and recipients per second.
Everything listens on 127.0.0.1; every step stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench import sample  # noqa: E402
from newsletter.config import Config, load  # noqa: E402
from newsletter.digest import MessageFactory, render_mailing  # noqa: E402
from newsletter.recipients import Recipient  # noqa: E402
from newsletter.send import ledger  # noqa: E402
from newsletter.send.dispatch import send_mailing  # noqa: E402
from newsletter.store import open_store, schema  # noqa: E402

# Briefs in the benchmark mailing: with the digest's layout, 7 make a copy of about 40 KB.
BRIEFS = 7
PARAGRAPH = (
    "Prosecutors in {place} said a network of brokers had moved cocaine through a private port terminal "
    "for years, paying customs officers to wave containers through inspections; {n} people were arrested "
    "in raids on Tuesday and investigators seized records of payments to shell companies abroad. "
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path, transport: str) -> Config:
    return sample.write_config(folder / "config.toml", edition="max_items = 15\n",
                               tables=f"[transport]\n{transport}\n")


def fill_store(config: Config, subscribers: int) -> tuple[sa.Engine, int, int]:
    """Subscribers, a rendered mailing of about 40 KB a copy, no deliveries yet; returns its size."""
    engine = open_store(config.store_url)
    t0 = sample.CREATED
    with engine.begin() as conn:
        for start in range(0, subscribers, 20_000):
            conn.execute(schema.subscribers.insert(), [
                {"email": f"reader{i}@example.net", "name": f"Reader {i}", "language": "en", "editions": [],
                 "countries": [], "status": "active", "soft_bounces": 0, "created_at": t0, "updated_at": t0}
                for i in range(start, min(start + 20_000, subscribers))
            ])
    edition = config.edition("daily-en")
    items = [sample.brief(i, PARAGRAPH, 1) for i in range(1, BRIEFS + 1)]
    rendered = render_mailing(config, edition, items, mailing_id=1, created_at=t0)
    with engine.begin() as conn:
        mailing_id = conn.execute(schema.mailings.insert().values(
            edition="daily-en", slot="bench", language="en", status="sending", subject=rendered.subject,
            preheader=rendered.preheader, brief_ids=list(range(1, BRIEFS + 1)), cutoff=t0, html=rendered.html,
            text=rendered.text, content_hash=rendered.content_hash, created_at=t0,
        )).inserted_primary_key[0]
        row = conn.execute(sa.select(schema.mailings).where(schema.mailings.c.id == mailing_id)).one()
    size = len(MessageFactory(config, row).build(Recipient(1, "reader1@example.net", "Reader 1")))
    return engine, mailing_id, size


def create_deliveries(engine: sa.Engine, mailing_id: int, config: Config) -> float:
    from newsletter.subscribers import audience

    started = time.monotonic()
    with engine.begin() as conn:
        ledger.create_deliveries(conn, mailing_id, audience(conn, config.edition("daily-en"), []))
    return time.monotonic() - started


class RSSWatch:
    """Peak resident memory of this process's descendants (the send workers), sampled every 50 ms."""

    def __init__(self) -> None:
        self.peak_total = 0
        self.peak_one = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _children(pid: int) -> list[int]:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.05):
            pids, todo = [], self._children(me)
            while todo:
                pid = todo.pop()
                pids.append(pid)
                todo += self._children(pid)
            # Only the send workers (python); smtp-sink and smtp-source are not ours to count.
            workers = [p for p in pids if "python" in _cmd(p)]
            sizes = [self._rss(p) for p in workers]
            self.peak_total = max(self.peak_total, sum(sizes))
            self.peak_one = max(self.peak_one, max(sizes, default=0))

    def __enter__(self) -> "RSSWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cmd(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def self_peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def smtp_sink(port: int) -> subprocess.Popen[bytes]:
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return sink
        except OSError:
            time.sleep(0.05)
    sink.kill()
    raise SystemExit("smtp-sink did not start")


def smtp_source(port: int, messages: int) -> float:
    started = time.monotonic()
    subprocess.run(["smtp-source", "-d", "-s", "4", "-l", "40000", "-m", str(messages), f"127.0.0.1:{port}"],
                   check=True, stdout=subprocess.DEVNULL)
    return messages / (time.monotonic() - started)


def smtp_rate(folder: Path, messages: int) -> None:
    port = free_port()
    sink = smtp_sink(port)
    try:
        config = write_config(folder, f'kind = "smtp"\nhost = "127.0.0.1"\nport = {port}\nconnections = 4')
        engine, mailing_id, size = fill_store(config, messages)
        create_deliveries(engine, mailing_id, config)
        # smtp-source before and after ours: the machine is shared, so load drifts during a run.
        before = smtp_source(port, messages)
        with RSSWatch() as watch:
            summary = send_mailing(config, engine, mailing_id, worker="bench")
        ours = summary.sent / summary.duration_seconds
        after = smtp_source(port, messages)
        theirs = (before + after) / 2
        engine.dispose()
    finally:
        sink.terminate()
        sink.wait()
    print(f"SMTP to smtp-sink, {summary.sent:,} personalised copies of {size / 1000:.1f} KB "
          f"({summary.failed} failed), [transport].connections = 4:")
    print(f"  ours        {ours:8,.0f} messages/s ({summary.duration_seconds:.1f} s, worker start-up included)")
    print(f"  smtp-source {theirs:8,.0f} messages/s (-d -s 4 -l 40000 -m {messages}; {before:,.0f} before ours, "
          f"{after:,.0f} after)")
    print(f"  ratio       {ours / theirs:8.2f}x")
    print(f"  peak RSS of the workers: {watch.peak_total / 2**20:.0f} MB together, "
          f"{watch.peak_one / 2**20:.0f} MB the largest")


def memory(folder: Path, sizes: list[int], seconds: float) -> None:
    print(f"Memory with N subscribers in the store (send to smtp-sink for {seconds:g} s, then pause):")
    for n in sizes:
        sub = folder / f"mem-{n}"
        sub.mkdir()
        port = free_port()
        sink = smtp_sink(port)
        try:
            write_config(sub, f'kind = "smtp"\nhost = "127.0.0.1"\nport = {port}\nconnections = 4')
            # A fresh process per size, so each peak is its own (VmHWM never goes down).
            out = subprocess.run([sys.executable, __file__, "--memory-child", str(sub), str(n), str(seconds)],
                                 check=True, capture_output=True, text=True).stdout
        finally:
            sink.terminate()
            sink.wait()
        r = json.loads(out)
        print(f"  {n:>9,}: create deliveries {r['create_s']:.0f} s, {r['creator_mb']:.0f} MB peak in that process; "
              f"sent {r['sent']:,} in {seconds:g} s; workers' peak RSS {r['workers_mb']:.0f} MB together, "
              f"{r['worker_mb']:.0f} MB the largest")
        shutil.rmtree(sub)


def memory_child(folder: Path, n: int, seconds: float) -> None:
    config = load(folder / "config.toml")
    engine, mailing_id, _ = fill_store(config, n)
    create_s = create_deliveries(engine, mailing_id, config)
    creator = self_peak_rss()

    def stop_later() -> None:
        time.sleep(seconds)
        with engine.begin() as conn:
            ledger.pause(conn, mailing_id, "benchmark over")

    threading.Thread(target=stop_later, daemon=True).start()
    with RSSWatch() as watch:
        summary = send_mailing(config, engine, mailing_id, worker="bench")
    print(json.dumps({"create_s": create_s, "creator_mb": creator / 2**20, "sent": summary.sent,
                      "workers_mb": watch.peak_total / 2**20, "worker_mb": watch.peak_one / 2**20}))


class _Stub(BaseHTTPRequestHandler):
    """Postmark's and SendGrid's batch endpoints, counting recipients and calls."""

    protocol_version = "HTTP/1.1"
    calls = 0
    recipients = 0
    lock = threading.Lock()

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/email/batch":
            n = len(body)
            data = json.dumps([{"ErrorCode": 0, "Message": "OK", "MessageID": f"m{i}"} for i in range(n)]).encode()
            status = 200
        else:
            n = len(body["personalizations"])
            data, status = b"", 202
        with _Stub.lock:
            _Stub.calls += 1
            _Stub.recipients += n
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def http_rate(folder: Path, recipients: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    os.environ["BENCH_API_TOKEN"] = "bench-token"
    print(f"HTTP batch API to a local stub, {recipients:,} recipients, [transport].connections = 4:")
    try:
        for kind, batch in (("postmark", 500), ("sendgrid", 1000)):
            sub = folder / f"http-{kind}"
            sub.mkdir()
            config = write_config(sub, f'kind = "{kind}"\napi_url = "{url}"\napi_token_env = "BENCH_API_TOKEN"\n'
                                       f"batch_size = {batch}\nconnections = 4")
            engine, mailing_id, _ = fill_store(config, recipients)
            create_deliveries(engine, mailing_id, config)
            _Stub.calls = _Stub.recipients = 0
            summary = send_mailing(config, engine, mailing_id, worker="bench")
            print(f"  {kind:9} {_Stub.recipients:,} recipients in {_Stub.calls} calls, {summary.duration_seconds:.1f} s, "
                  f"{summary.sent / summary.duration_seconds:,.0f} recipients/s")
            engine.dispose()
    finally:
        server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--memory-sizes", default="10000,100000,1000000")
    parser.add_argument("--memory-seconds", type=float, default=40.0)
    parser.add_argument("--http", type=int, default=100_000)
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("NEWSLETTER_SECRET_KEY", "bench-secret-key-0123456789abcdefghijkl")
    if args.memory_child:
        folder, n, seconds = args.memory_child
        memory_child(Path(folder), int(n), float(seconds))
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, SQLite store")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.messages:
            (folder / "smtp").mkdir()
            smtp_rate(folder / "smtp", args.messages)
        sizes = [int(s) for s in args.memory_sizes.split(",") if s]
        if sizes:
            memory(folder, sizes, args.memory_seconds)
        if args.http:
            http_rate(folder, args.http)


if __name__ == "__main__":
    main()
