"""A real publisher: Debian's WordPress on a private MariaDB, served by PHP's built-in server.

`WordPressServer(folder).start()` initialises a MariaDB data directory in `folder`, starts
`mariadbd` on a socket and a 127.0.0.1 port, builds one document root per site from the one
WordPress tree in /usr/share/wordpress (its directories linked, its small top-level files copied
next to our own wp-config.php), installs the sites with `wp_install` and serves each with
`php -S` and tests/wordpress/router.php, so pretty permalinks and /wp-json/ work as under Apache.

Two sites, like the publisher's: English in UTC and Spanish in America/Bogota, each in its own
database. Tests change them only through WordPress's PHP API (tests/wordpress/wp.php running the
operations of tests/wordpress/ops.php) and the switches of tests/wordpress/mu-plugin.php.
Used by the session fixture in tests/conftest.py and by bench/collect.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

NEWS = {"en": "news", "es": "noticias"}  # the category of briefs on each site
HERE = Path(__file__).resolve().parent.parent / "wordpress"
WORDPRESS_TREE = Path("/usr/share/wordpress")
PORT_RANGE = range(18000, 19000)
START_TIMEOUT = 60.0
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])

# Post content in the publisher's shapes (tests/wordpress holds none of the publisher's text).
HEADINGS = {
    "h2": '<h2 class="wp-block-heading" id="h-analysis">{heading}</h2>',
    "h3": "<h3>{heading}</h3>",
    "strong": "<p><strong>{heading}</strong></p>",
}
ANALYSIS = {"en": "InSight Crime Analysis", "es": "Análisis de InSight Crime"}


def missing() -> list[str]:
    """What this machine lacks to run the WordPress fixture (Debian packages by name)."""
    lacking = []
    if not (WORDPRESS_TREE / "wp-settings.php").is_file():
        lacking.append("wordpress")
    if not all(shutil.which(b, path=SBIN) for b in ("mariadbd", "mariadb-install-db", "mariadb")):
        lacking.append("mariadb-server")
    if not shutil.which("php"):
        lacking.append("php-cli")
    elif "mysqli" not in subprocess.run(["php", "-m"], capture_output=True, text=True).stdout:
        lacking.append("php-mysql")
    return lacking


def free_port(taken: set[int]) -> int:
    """A port of our range nobody listens on (another test run or a bench may hold some)."""
    for port in PORT_RANGE:
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError(f"no free port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def brief_html(title: str, *, language: str = "en", heading: str = "h2", country: str = "Colombia",
               paragraphs: int = 2) -> str:
    """A brief's body as the publisher writes it: news paragraphs, the analysis heading, analysis."""
    if language == "es":
        news = [f"<p>Las autoridades de {country} informaron sobre {title.lower()}; el caso muestra cómo "
                f"se adaptan las redes criminales, según fuentes oficiales consultadas.</p>"]
        analysis = f"<p>El episodio confirma una tendencia que se observa en {country} desde hace años.</p>"
    else:
        news = [f"<p>Officials in {country} reported on {title.lower()}, a case that shows how criminal "
                f"networks adapt, according to official sources.</p>"]
        analysis = f"<p>The episode confirms a trend seen in {country} for years.</p>"
    news += [f"<p>Paragraph {k} of the news part, with <a href=\"/news/earlier-report/\">earlier reporting</a>.</p>"
             for k in range(2, paragraphs + 1)]
    return "\n".join(news) + "\n" + HEADINGS[heading].format(heading=ANALYSIS[language]) + "\n" + analysis


@dataclass
class Site:
    """One WordPress site: its address, document root and database; changed only through PHP."""

    name: str
    url: str
    docroot: Path
    database: str
    language: str
    timezone: str
    process: subprocess.Popen[bytes] | None = None

    def run(self, ops: list[dict[str, Any]], *, install: dict[str, Any] | None = None) -> list[Any]:
        """Run operations (tests/wordpress/ops.php) through WordPress's PHP API; their results."""
        args = ["php", str(HERE / "wp.php"), str(self.docroot)] + (["install"] if install else [])
        proc = subprocess.run(args, input=json.dumps(install or ops), capture_output=True, text=True, timeout=300)
        if proc.returncode != 0 or not proc.stdout.startswith("["):
            raise RuntimeError(f"wp.php on {self.name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return json.loads(proc.stdout)

    def one(self, op: str, **fields: Any) -> Any:
        return self.run([{"op": op, **fields}])[0]

    def publish(self, title: str, *, categories: list[str] | None = None, tags: list[str] | None = None,
                heading: str = "h2", content: str | None = None, **fields: Any) -> dict[str, Any]:
        """A post (published unless `status` says otherwise); its id, link, status and modified_gmt."""
        country = (tags or ["Colombia"])[0]
        body = content if content is not None else brief_html(title, language=self.language, heading=heading,
                                                               country=country)
        return self.one("insert", title=title, content=body, categories=categories or [NEWS[self.language]],
                        tags=tags or ["Colombia"], **fields)

    def bulk_publish(self, n: int, *, title: str, date_gmt: str, categories: list[str] | None = None,
                     tags: list[str] | None = None, step_seconds: int = 0) -> list[int]:
        """n posts published together: one date, one modified time (or each `step_seconds` after
        the previous one, from `date_gmt`). `title` may hold {i}."""
        country = (tags or ["Colombia"])[0]
        spread = {"step_seconds": step_seconds} if step_seconds else {}
        return self.one("bulk", n=n, title=title, date_gmt=date_gmt, **spread,
                        content=brief_html(title, language=self.language, country=country),
                        categories=categories or [NEWS[self.language]], tags=tags or ["Colombia"])

    def update(self, post_id: int, **fields: Any) -> dict[str, Any]:
        return self.one("update", id=post_id, **fields)

    def trash(self, post_id: int) -> bool:
        return self.one("trash", id=post_id)

    def delete(self, post_id: int) -> bool:
        return self.one("delete", id=post_id)

    def set_option(self, name: str, value: Any) -> None:
        self.one("option", name=name, value=value)

    def reset(self) -> None:
        """Back to the site as installed: no posts, every switch off, not in maintenance."""
        self.one("reset")
        (self.docroot / ".maintenance").unlink(missing_ok=True)

    def on_request(self, nth: int, ops: list[dict[str, Any]]) -> None:
        """Run `ops` before WordPress answers a collector's nth request for posts from now on."""
        self.set_option("nl_on_request", {"request": nth, "ops": ops})

    @contextmanager
    def switch(self, name: str, value: Any) -> Iterator[None]:
        """A mu-plugin switch on for the block: nl_require_login 1, nl_answer "html" or "fatal"."""
        self.set_option(name, value)
        try:
            yield
        finally:
            self.set_option(name, None)

    @contextmanager
    def maintenance(self) -> Iterator[None]:
        """WordPress's own maintenance mode (the file an update writes): 503, Retry-After: 600."""
        marker = self.docroot / ".maintenance"
        marker.write_text("<?php $upgrading = time();\n")
        try:
            yield
        finally:
            marker.unlink(missing_ok=True)

    def app_password(self) -> str:
        """A new application password for the site's admin (Basic auth for the REST API)."""
        return self.one("app_password", user="admin", name=f"newsletter-{secrets.token_hex(3)}")


class WordPressServer:
    """MariaDB plus the two sites, all in `folder`, all on 127.0.0.1; `stop()` ends what it started."""

    SITES = (
        ("en", "InSight Crime Test", "en_US", "UTC", "Laura Ortiz and Peter Kemp"),
        ("es", "InSight Crime Prueba", "es_ES", "America/Bogota", "Laura Ortiz y Pedro Campo"),
    )

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "mysqld.sock"
        self.mysqld: subprocess.Popen[bytes] | None = None
        self.sites: dict[str, Site] = {}
        self.admin_password = secrets.token_urlsafe(16)
        self.ports: set[int] = set()

    def start(self) -> "WordPressServer":
        try:
            self._start_mariadb()
            for language, title, locale, zone, author in self.SITES:
                site = self._make_site(language, zone)
                site.run([], install={"title": title, "locale": locale, "timezone": zone, "author": author,
                                      "description": "Investigation and analysis", "admin_password": self.admin_password})
                site.run([{"op": "terms", "taxonomy": "category",
                           "names": ["News", "Mexico Organized Crime News", "Noticias", "México Crimen Organizado"]}])
                self._serve(site)
                self.sites[language] = site
            for site in self.sites.values():
                self._wait_http(site)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for site in self.sites.values():
            _end(site.process, group=True)
        _end(self.mysqld, group=False)

    def _start_mariadb(self) -> None:
        data = self.folder / "mariadb"
        log = self.folder / "mariadb.log"
        root_user = ["--user=root"] if os.geteuid() == 0 else []
        _check(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
                "--skip-test-db", "--skip-name-resolve", *root_user], "mariadb-install-db")
        port = free_port(self.ports)
        self.mysqld = subprocess.Popen(
            [shutil.which("mariadbd", path=SBIN) or "mariadbd", "--no-defaults", f"--datadir={data}",
             f"--socket={self.socket}", f"--port={port}", "--bind-address=127.0.0.1", f"--log-error={log}",
             f"--pid-file={self.folder / 'mariadb.pid'}", "--skip-name-resolve", "--innodb-buffer-pool-size=64M",
             "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", *root_user],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            made = subprocess.run(
                ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot",
                 "-e", "CREATE DATABASE IF NOT EXISTS wp_en; CREATE DATABASE IF NOT EXISTS wp_es"],
                capture_output=True, text=True)
            if made.returncode == 0:
                return
            if self.mysqld.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"MariaDB did not start: {made.stderr.strip()}\n{_tail(log)}")
            time.sleep(0.2)

    def _make_site(self, language: str, timezone: str) -> Site:
        port = free_port(self.ports)
        url = f"http://127.0.0.1:{port}"
        docroot = self.folder / f"site-{language}"
        docroot.mkdir()
        for entry in WORDPRESS_TREE.iterdir():
            if entry.name in ("wp-config.php", ".htaccess", "wp-content"):
                continue
            # Top-level files are copied: PHP resolves links, and wp-load.php finds wp-config.php
            # next to its real self. The directories are reached through ABSPATH, so links do.
            if entry.is_dir():
                (docroot / entry.name).symlink_to(entry)
            else:
                shutil.copy2(entry, docroot / entry.name)
        for sub in ("plugins", "themes", "uploads", "mu-plugins"):
            (docroot / "wp-content" / sub).mkdir(parents=True)
        (docroot / "wp-content" / "mu-plugins" / "newsletter-tests.php").write_text(
            f"<?php\nrequire {php_string(str(HERE / 'mu-plugin.php'))};\n")
        keys = "\n".join(f"define({php_string(k)}, {php_string(secrets.token_hex(32))});" for k in (
            "AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
            "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"))
        (docroot / "wp-config.php").write_text(f"""<?php
define('DB_NAME', 'wp_{language}');
define('DB_USER', 'root');
define('DB_PASSWORD', '');
define('DB_HOST', {php_string('localhost:' + str(self.socket))});
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
{keys}
$table_prefix = 'wp_';
define('WP_HOME', {php_string(url)});
define('WP_SITEURL', {php_string(url)});
define('WP_CONTENT_DIR', __DIR__ . '/wp-content');
define('WP_CONTENT_URL', {php_string(url + '/wp-content')});
// Application passwords over plain HTTP: WordPress allows them on a "local" site only.
define('WP_ENVIRONMENT_TYPE', 'local');
// Nothing calls out: no cron loopbacks, no update checks.
define('DISABLE_WP_CRON', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('WP_DEBUG', false);
define('ABSPATH', __DIR__ . '/');
require_once ABSPATH . 'wp-settings.php';
""")
        return Site(name=language, url=url, docroot=docroot, database=f"wp_{language}", language=language,
                    timezone=timezone)

    def _serve(self, site: Site) -> None:
        log = open(self.folder / f"php-{site.name}.log", "ab")
        host = site.url.removeprefix("http://")
        site.process = subprocess.Popen(
            ["php", "-d", "display_errors=0", "-d", "log_errors=1", "-d", f"error_log={self.folder / f'php-{site.name}-errors.log'}",
             "-S", host, "-t", str(site.docroot), str(HERE / "router.php")],
            stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, "PHP_CLI_SERVER_WORKERS": "4"})
        log.close()

    def _wait_http(self, site: Site) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        error: object = "no answer yet"
        while True:
            try:
                with urllib.request.urlopen(site.url + "/wp-json/", timeout=5) as answer:
                    if answer.status == 200:
                        return
                    error = f"HTTP {answer.status}"
            except (urllib.error.URLError, OSError) as exc:
                error = exc
            if site.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"WordPress {site.name} did not answer at {site.url}: {error}\n"
                                   f"{_tail(self.folder / f'php-{site.name}.log')}")
            time.sleep(0.2)


def php_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _check(args: list[str], what: str) -> None:
    args = [shutil.which(args[0], path=SBIN) or args[0], *args[1:]]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def _end(process: subprocess.Popen[bytes] | None, *, group: bool) -> None:
    """Stop one process we started (with its workers when it leads a group): TERM, then KILL."""
    if process is None or process.poll() is not None:
        return
    stop = (lambda sig: os.killpg(process.pid, sig)) if group else process.send_signal
    stop(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        stop(signal.SIGKILL)
        process.wait(timeout=10)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@pytest.fixture(scope="session")
def wordpress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WordPressServer]:
    """Both sites, started once per test run; skipped without the Debian packages unless
    NEWSLETTER_REQUIRE_WORDPRESS=1 (scripts/test sets it)."""
    lacking = missing()
    if lacking:
        message = f"no real WordPress: apt-get install {' '.join(lacking)}"
        if os.environ.get("NEWSLETTER_REQUIRE_WORDPRESS") == "1":
            pytest.fail(message + " (NEWSLETTER_REQUIRE_WORDPRESS=1)")
        pytest.skip(message)
    server = WordPressServer(tmp_path_factory.mktemp("wordpress")).start()
    yield server
    server.stop()
