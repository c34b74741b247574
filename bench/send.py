"""Sending benchmark: `newsletter send` as an operator runs it, against Postfix's smtp-source.

    .venv/bin/python bench/send.py [--messages 100000] [--runs 2] [--signed-runs 1]
                                   [--memory-sizes 10000,100000,1000000] [--memory-seconds 40]
                                   [--memory-pg SERVER_URL] [--memory-signed] [--http 100000]

1. Starts Postfix's smtp-sink on 127.0.0.1 (only that tool, not Postfix), fills a store with
   `--messages` subscribers and 7 briefs (copies of about 40 KB), and times the real command,
   `newsletter --config C send daily-en`, from its start to its exit (mailing creation,
   rendering, worker start-up and the last record included; [transport].connections = 4).
   Against the same sink, `smtp-source -d -s 4 -l 40000 -m N` runs before and after ours; each
   figure is printed with its ratio to their mean and the load average. `--signed-runs` does
   the same with DKIM (RSA-2048) signing every copy. Peak RSS of the command and its workers
   (sampled every 50 ms) is printed too.
2. For each of `--memory-sizes` subscribers: the same command for `--memory-seconds`, then
   SIGTERM (it winds down); prints the peak RSS of the command (overall, and while its workers
   ran), of each worker, and of all of them together at one moment. `--memory-pg` repeats it
   on PostgreSQL (a throwaway database made on that server, dropped after), `--memory-signed`
   with DKIM (RSA-2048) signing, both on each store.
3. Sends `--http` recipients through the Postmark and SendGrid transports to a local stub of
   their batch endpoints; prints calls and recipients per second.
Everything listens on 127.0.0.1; every step stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
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
from newsletter import briefs  # noqa: E402
from newsletter.config import Config, load as load_config  # noqa: E402
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


def operator_store(folder: Path, port: int, subscribers: int, dkim: str = "", store_url: str = "") -> Path:
    """A config and a store of `subscribers` readers and 7 briefs news since the last mailing
    (none yet): `newsletter send daily-en` creates the mailing, renders it and sends it.
    The store is a SQLite file in `folder` unless `store_url` names another (PostgreSQL)."""
    config = write_config(folder, f'kind = "smtp"\nhost = "127.0.0.1"\nport = {port}\nconnections = 4\n{dkim}')
    if store_url:
        path = folder / "config.toml"
        path.write_text(path.read_text().replace(config.store_url, store_url))
        config = load_config(path)
    engine = open_store(config.store_url)
    t0 = sample.CREATED
    with engine.begin() as conn:
        for i in range(1, BRIEFS + 1):
            item = sample.brief(i, PARAGRAPH, 1)
            briefs.upsert(conn, briefs.Brief(**{**item.__dict__, "id": None}), site_url=config.publication.site_url)
        for start in range(0, subscribers, 20_000):
            conn.execute(schema.subscribers.insert(), [
                {"email": f"reader{i}@example.net", "name": f"Reader {i}", "language": "en", "editions": [],
                 "countries": [], "status": "active", "soft_bounces": 0, "created_at": t0, "updated_at": t0}
                for i in range(start, min(start + 20_000, subscribers))
            ])
    engine.dispose()
    return folder / "config.toml"


def dkim_settings(folder: Path) -> str:
    key = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    return f'\n[dkim]\nselector = "mail"\ndomain = "example.org"\nprivate_key_path = "{key}"\n'


def newsletter_send(config: Path, *, stop_after: float | None = None) -> tuple[float, dict, "RSSWatch"]:
    """`newsletter --config CONFIG send daily-en --json` as an operator starts it: (seconds from
    start to exit, its JSON summary, the peak RSS of it and its workers)."""
    command = [str(Path(sys.executable).parent / "newsletter"), "--config", str(config), "send", "daily-en", "--json"]
    started = time.monotonic()
    with RSSWatch() as watch:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watch.root = proc.pid
        if stop_after is not None:
            try:
                proc.wait(timeout=stop_after)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=3600)
    seconds = time.monotonic() - started
    if proc.returncode not in (0, 128 + signal.SIGTERM):
        raise SystemExit(f"newsletter send exited {proc.returncode}:\n{err[-2000:]}")
    return seconds, json.loads(out), watch


def load_average() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def operator_rate(folder: Path, messages: int, runs: int, signed: bool) -> None:
    what = "DKIM-signed (RSA-2048) " if signed else ""
    print(f"`newsletter send daily-en` to smtp-sink, {messages:,} {what}copies, [transport].connections = 4, "
          f"timed from the command's start to its exit:")
    ratios = []
    for run in range(runs):
        sub = folder / f"{'signed' if signed else 'plain'}-{run}"
        sub.mkdir()
        port = free_port()
        sink = smtp_sink(port)
        try:
            config = operator_store(sub, port, messages, dkim_settings(sub) if signed else "")
            load_before = load_average()
            before = smtp_source(port, messages)
            seconds, summary, watch = newsletter_send(config)
            after = smtp_source(port, messages)
            load_after = load_average()
        finally:
            sink.terminate()
            sink.wait()
            shutil.rmtree(sub)
        ours = summary["sent"] / seconds
        theirs = (before + after) / 2
        ratios.append(ours / theirs)
        print(f"  run {run + 1}: ours {ours:6,.0f} messages/s ({summary['sent']:,} sent, {summary['failed']} failed, "
              f"{seconds:.1f} s; the send itself {summary['duration_seconds']:.1f} s); smtp-source {before:,.0f} before, "
              f"{after:,.0f} after; ratio {ours / theirs:.2f}x; peak RSS {watch.peak_total / 2**20:.0f} MB together "
              f"(command {watch.peak_root / 2**20:.0f} MB, largest worker {watch.peak_one / 2**20:.0f} MB); "
              f"{watch.cpu_split()}; {load_before} before, {load_after} after")
    print(f"  ratio {min(ratios):.2f}x to {max(ratios):.2f}x over {runs} run(s)")


def memory(folder: Path, sizes: list[int], seconds: float, *, pg: str = "", signed: bool = False) -> None:
    """Peak RSS of the command and of each worker, for each size; on PostgreSQL (a throwaway
    database on the server `pg`) instead of SQLite, and with DKIM signing, when asked."""
    store = "PostgreSQL" if pg else "SQLite"
    what = ", DKIM-signed (RSA-2048)" if signed else ""
    print(f"Memory of `newsletter send` with N subscribers, {store}{what} (sending to smtp-sink for {seconds:g} s, "
          f"then SIGTERM):")
    for n in sizes:
        sub = folder / f"mem-{n}"
        sub.mkdir()
        port = free_port()
        sink = smtp_sink(port)
        try:
            with contextlib.ExitStack() as stack:
                url = stack.enter_context(sample.throwaway_database(pg)) if pg else ""
                config = operator_store(sub, port, n, dkim_settings(sub) if signed else "", store_url=url)
                elapsed, summary, watch = newsletter_send(config, stop_after=seconds)
        finally:
            sink.terminate()
            sink.wait()
            shutil.rmtree(sub)
        each = ", ".join(f"{peak / 2**20:.0f}" for peak in watch.peaks.values())
        print(f"  {n:>9,}: sent {summary['sent']:,} in {elapsed:.0f} s; peak RSS {watch.peak_total / 2**20:.0f} MB "
              f"together (command {watch.peak_root / 2**20:.0f} MB, while its workers ran "
              f"{watch.peak_root_sending / 2**20:.0f} MB; workers {watch.peak_workers / 2**20:.0f} MB, each {each} MB); "
              f"{load_average()}")


class RSSWatch:
    """Peak resident memory of this process's descendants (the send workers), sampled every 50 ms."""

    def __init__(self) -> None:
        self.root = 0  # the process whose tree is watched (0: none yet)
        self.peak_total = 0  # the root and its python descendants together
        self.peak_root = 0
        self.peak_workers = 0
        self.peak_one = 0  # the largest descendant
        self.peak_root_sending = 0  # the root while its workers ran
        self.peaks: dict[int, int] = {}  # each worker's peak, by pid
        self.cpu: dict[int, float] = {}  # CPU seconds by pid (the root's and each worker's), last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            if not self.root:
                continue
            # Only the send workers (python); smtp-sink and smtp-source are not ours to count, nor a
            # child between fork and exec (still a copy of the command).
            workers = {p: sample.rss(p) for p in sample.descendants(self.root) if "spawn_main" in _cmd(p)}
            sizes = list(workers.values())
            root = sample.rss(self.root)
            for pid, size in workers.items():
                self.peaks[pid] = max(self.peaks.get(pid, 0), size)
            for pid in [self.root, *workers]:
                self.cpu[pid] = max(self.cpu.get(pid, 0.0), sample.cpu_seconds(pid))
            if sizes:
                self.peak_root_sending = max(self.peak_root_sending, root)
            self.peak_root = max(self.peak_root, root)
            self.peak_workers = max(self.peak_workers, sum(sizes))
            self.peak_total = max(self.peak_total, root + sum(sizes))
            self.peak_one = max(self.peak_one, max(sizes, default=0))

    def cpu_split(self) -> str:
        """The CPU seconds of the command and of its workers, as last seen (a worker's last 50 ms
        may be missed)."""
        workers = sum(seconds for pid, seconds in self.cpu.items() if pid != self.root)
        return f"CPU {self.cpu.get(self.root, 0.0):.1f} s in the command, {workers:.1f} s in the workers"

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
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--signed-runs", type=int, default=1)
    parser.add_argument("--memory-sizes", default="10000,100000,1000000")
    parser.add_argument("--memory-seconds", type=float, default=40.0)
    parser.add_argument("--memory-pg", default="", metavar="SERVER_URL",
                        help="also measure memory on PostgreSQL, in a throwaway database made on this server")
    parser.add_argument("--memory-signed", action="store_true", help="also measure memory with DKIM signing")
    parser.add_argument("--http", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.setdefault("NEWSLETTER_SECRET_KEY", "bench-secret-key-0123456789abcdefghijkl")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, SQLite store, {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.messages and args.runs:
            operator_rate(folder, args.messages, args.runs, signed=False)
        if args.messages and args.signed_runs:
            operator_rate(folder, args.messages, args.signed_runs, signed=True)
        sizes = [int(s) for s in args.memory_sizes.split(",") if s]
        if sizes:
            for pg in ("", args.memory_pg) if args.memory_pg else ("",):
                for signed in (False, True) if args.memory_signed else (False,):
                    memory(folder, sizes, args.memory_seconds, pg=pg, signed=signed)
        if args.http:
            http_rate(folder, args.http)


if __name__ == "__main__":
    main()
