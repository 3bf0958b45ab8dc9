"""Be learner A with lessons open: servers up, secrets stored, the shop site running; then wait.

Run as user A with the workshop's Python, through perflab's public API only (setup, use_caches,
``python -m perflab site``), so the toolkit can change inside without this file changing. Before
saying it is ready it proves, as A, that everything works (the positive controls): a refusal
seen by user B means nothing if the server was down. Rows go to --controls as tab-separated
lines (target, what was tried, OK or FAILED, detail); the ready file says where the site is.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

SITE_START_TIMEOUT = 120.0
HTTP_TIMEOUT = 10.0  # A's own requests: a login hashes the password, slow on a busy machine
STOP_POLL = 0.2


@dataclass
class Controls:
    """Write one row per positive control; remember whether all passed."""

    path: Path
    failed: int = 0

    def add(self, target: str, tried: str, ok: bool, detail: str = "") -> bool:
        self._write(target, tried, "OK" if ok else "FAILED", detail)
        self.failed += not ok
        return ok

    def note(self, target: str, tried: str, detail: str) -> None:
        """Record what was seen without judging it (it can't fail, so it is no control)."""
        self._write(target, tried, "NOTE", detail)

    def _write(self, *fields: str) -> None:
        with self.path.open("a") as handle:
            handle.write("\t".join(" ".join(text.split()) for text in fields) + "\n")


# --- where A's servers are, from Django's own settings ------------------------------------------


def endpoint_of(location: str) -> str:
    """Return "tcp:HOST:PORT" or "unix:PATH" for a cache LOCATION or URL."""
    text = location.strip()
    if text.startswith("unix:"):
        return "unix:" + re.sub(r"^unix:(//)?", "", text).split("?")[0]
    if text.startswith("/"):
        return "unix:" + text.split("?")[0]
    parts = urlsplit(text if "://" in text else f"//{text}")
    if parts.port is None:
        raise ValueError(f"cannot tell where {location!r} listens")
    return f"tcp:{parts.hostname}:{parts.port}"


def lab_endpoints() -> list[str]:
    """Return where the lab's PostgreSQL, memcached and Redis listen, as Django was told."""
    from django.conf import settings

    found = []
    for alias in ("memcached", "redis"):
        location = settings.CACHES[alias]["LOCATION"]
        items = location if isinstance(location, list | tuple) else re.split(r"[;,]", location)
        found += [endpoint_of(item) for item in items if item.strip()]
    for alias in ("default", "replica"):  # the lab's copy, and its streaming replica
        if alias not in settings.DATABASES:
            continue
        db = settings.DATABASES[alias]
        host = db.get("HOST") or "/var/run/postgresql"
        port = db.get("PORT") or "5432"
        found.append(f"unix:{host}/.s.PGSQL.{port}" if host.startswith("/")
                     else f"tcp:{host}:{port}")
    return found


# --- A's lab: PostgreSQL, memcached, Redis ------------------------------------------------------


def hold_lab(secret: str, controls: Controls) -> list[str]:
    """Start the lab as a lesson does, store the secret everywhere, read it back; the endpoints."""
    from django.db import connection

    from perflab import setup

    lab = setup(database="postgres", scale="tiny")
    controls.add("PostgreSQL (A's lab)", "setup(database='postgres') runs on PostgreSQL",
                 connection.vendor == "postgresql", f"vendor {connection.vendor}")
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE isolation_secret (value text)")
        cursor.execute("INSERT INTO isolation_secret VALUES (%s)", [secret])
        cursor.execute("SELECT value FROM isolation_secret")
        row = cursor.fetchone()
    controls.add("PostgreSQL (A's lab)", "A writes and reads back its secret row",
                 row == (secret,))
    hold_replica(lab, secret, controls)
    bouncer_endpoints = hold_pgbouncer(lab, secret, controls)
    caches = lab.use_caches("memcached", "redis")
    for name in ("memcached", "redis"):
        cache = caches.get(name)
        if cache is None:
            controls.add(f"{name} (A's cache)", "use_caches() gives a real server", False,
                         "missing from use_caches()")
            continue
        cache.set("secret", secret, None)
        controls.add(f"{name} (A's cache)", "A sets and reads back its secret",
                     cache.get("secret") == secret)
    return lab_endpoints() + bouncer_endpoints + serve_lab(lab, controls)


def hold_replica(lab: Any, secret: str, controls: Controls) -> None:
    """Start a streaming replica of A's PostgreSQL (lesson 12) and read the secret back there."""
    from django.db import connections

    replica = lab.replica()
    controls.add("PostgreSQL replica (A's, lesson 12)", "lab.replica() streams from A's server",
                 replica is not None and replica.status().get("state") == "streaming")
    replica.catch_up()
    with connections["replica"].cursor() as cursor:
        cursor.execute("SELECT value FROM isolation_secret")
        row = cursor.fetchone()
    controls.add("PostgreSQL replica (A's, lesson 12)", "A reads its secret row on the replica",
                 row == (secret,))


def hold_pgbouncer(lab: Any, secret: str, controls: Controls) -> list[str]:
    """Start PgBouncer in front of A's PostgreSQL (lesson 19), read the secret through it."""
    from django.db import connections

    bouncer = lab.pgbouncer(pool_size=2)
    if not controls.add("PgBouncer (A's, lesson 19)", "lab.pgbouncer() starts",
                        bouncer is not None and bouncer.running):
        return []
    lab.add_database("bouncer", bouncer.database)
    with connections["bouncer"].cursor() as cursor:
        cursor.execute("SELECT value FROM isolation_secret")
        row = cursor.fetchone()
    controls.add("PgBouncer (A's, lesson 19)", "A reads its secret row through PgBouncer",
                 row == (secret,))
    pools = [row["database"] for row in bouncer.show("pools")]
    controls.add("PgBouncer (A's, lesson 19)", "A opens PgBouncer's admin console (SHOW POOLS)",
                 "pgbouncer" in pools, f"pools: {', '.join(pools)}")
    return [f"unix:{bouncer.socket_path}"]


def serve_lab(lab: Any, controls: Controls) -> list[str]:
    """Serve A's lab as the serving lessons do; the endpoints.

    Gunicorn and a slow upstream (lesson 08), a mail server that wants a password and a Celery
    worker on A's Redis socket (lesson 09), nginx as a CDN's edge in front of the shop (13).
    """
    import secrets
    import smtplib

    from shop import signatures

    smtp = lab.smtp_server()
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as client:
        client.login(smtp.user, smtp.password)
        client.sendmail("shop@example.com", ["a@example.com"], "Subject: A's mail\r\n\r\nA")
    controls.add("SMTP server (A's)", "A logs in with its password and sends a message",
                 smtp.count() == 1, f"{smtp.count()} message(s) in the mailbox")
    secret = secrets.token_urlsafe(16)  # as lesson 09 serves its payment webhook
    served = lab.serve(workers=2, settings={**smtp.settings, "PAYMENT_WEBHOOK_SECRET": secret})
    controls.add("served shop (A's lab)", "lab.serve() answers /healthz",
                 http_status(served.url + "/healthz") == 200)
    path = "/webhooks/paid/2/"  # order 2: the attacker tries order 1
    controls.add("payment webhook (A's shop)", "A's signed call is taken",
                 http_status(served.url + path, method="POST", headers={
                     signatures.HEADER: signatures.sign(secret, path)}) == 200)
    edge = lab.edge_cache(served)
    controls.add("nginx edge (A's, lesson 13)", "lab.edge_cache() answers /healthz",
                 edge is not None and http_status(edge.url + "/healthz") == 200)
    upstream = lab.slow_upstream(delay_ms=10)
    controls.add("slow upstream (A's)", "lab.slow_upstream() answers /api/",
                 http_status(upstream.url + "/api/x") == 200)
    worker = lab.celery_worker()
    controls.add("Celery worker (A's)", "lab.celery_worker() runs on A's Redis socket",
                 worker is not None and worker.running)
    return [f"tcp:{served.address}", f"tcp:{upstream.address}", f"tcp:{smtp.address}",
            *([f"tcp:{edge.address}"] if edge is not None else [])]


def http_status(url: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> int:
    import urllib.request

    request = urllib.request.Request(url, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


# --- A's site -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_site(port: int, log: Path) -> subprocess.Popen[bytes]:
    # Unbuffered: the banner with the admin password must reach the log even though stdout is
    # a file. A session of its own, so stopping it stops runserver's reloader child too.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "perflab", "site", "--port", str(port), "--scale", "tiny"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )


def stop_site(site: subprocess.Popen[bytes]) -> None:
    """Stop runserver and its reloader child: Ctrl+C first, as a learner would, then SIGKILL."""
    for sig in (signal.SIGINT, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(site.pid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            site.poll()  # reap the leader, or the group never looks empty
            try:
                os.killpg(site.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


@dataclass
class Page:
    status: int
    location: str
    body: str
    cookies: dict[str, str]


def request(port: int, method: str, path: str, *, cookies: dict[str, str] | None = None,
            form: dict[str, str] | None = None) -> Page:
    """Send one request to the site, following no redirect."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
    headers = {"Host": f"127.0.0.1:{port}"}
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    body = None
    if form is not None:
        body = urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        jar: SimpleCookie = SimpleCookie()
        for header in response.headers.get_all("Set-Cookie") or []:
            jar.load(header)
        return Page(response.status, response.getheader("Location") or "",
                    response.read().decode(errors="replace"),
                    {name: morsel.value for name, morsel in jar.items()})
    finally:
        conn.close()


def wait_for_site(port: int, site: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + SITE_START_TIMEOUT
    while time.monotonic() < deadline and site.poll() is None:
        with contextlib.suppress(OSError, http.client.HTTPException):
            if request(port, "GET", "/").status < 500:  # up, even if its pages need a login
                return True
        time.sleep(0.3)
    return False


def banner_password(log: Path) -> str | None:
    """Return the admin password the site printed ("admin / <password>"), if it printed one."""
    match = re.search(r"admin\s*/\s*([^\s)'\"]+)", log.read_text(errors="replace"))
    return match.group(1).rstrip(".,;:") if match else None


def log_in(port: int, password: str) -> str | None:
    """Log into the admin as A would in a browser; return the session cookie on success."""
    page = request(port, "GET", "/admin/login/?next=/admin/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
    csrf = page.cookies.get("csrftoken")
    if token is None or csrf is None:
        return None
    form = {"csrfmiddlewaretoken": token.group(1), "username": "admin", "password": password,
            "next": "/admin/"}
    answer = request(port, "POST", "/admin/login/?next=/admin/", cookies={"csrftoken": csrf},
                     form=form)
    if answer.status != 302 or not answer.location.endswith("/admin/"):
        return None
    return answer.cookies.get("sessionid")


def check_site(port: int, log: Path, controls: Controls) -> None:
    password = banner_password(log)
    controls.note("site (A's shop)", "read the admin password from its banner",
                  f"found one ({len(password)} characters)" if password
                  else "no 'admin / <password>' in its output: trying 'admin'")
    session = log_in(port, password or "admin")
    if not controls.add("site (A's shop)", "A logs into /admin/ with its password",
                        session is not None):
        return
    assert session is not None
    admin = request(port, "GET", "/admin/", cookies={"sessionid": session})
    controls.add("site (A's shop)", "A opens /admin/ logged in",
                 admin.status == 200 and "/admin/logout/" in admin.body,
                 f"status {admin.status}")
    home = request(port, "GET", "/", cookies={"sessionid": session})
    controls.add("site (A's shop)", "A sees the debug toolbar when logged in",
                 "djDebug" in home.body, f"status {home.status}")


# --- holding on ---------------------------------------------------------------------------------


def wait_for_stop(stop_file: Path) -> None:
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stopping and not stop_file.exists():
        time.sleep(STOP_POLL)


def write_ready(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1))
    temporary.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Hold the lab until told to stop; 0 when every control passed, 1 when one failed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ready", type=Path, required=True, help="JSON written once ready")
    parser.add_argument("--stop", type=Path, required=True, help="stop when this file appears")
    parser.add_argument("--controls", type=Path, required=True, help="rows of the controls (TSV)")
    parser.add_argument("--site-log", type=Path, required=True, help="the site's output")
    parser.add_argument("--endpoints", type=Path, required=True,
                        help="where A's servers and site listen, one per line, for the driver")
    args = parser.parse_args(argv)

    # Started in the background by a shell, we inherit SIGINT ignored, and so would the site:
    # take it back, so Ctrl+C (SIGINT) stops runserver as it does for a learner.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    controls = Controls(args.controls)
    controls.add("holder", "runs with PERFLAB_STRICT=1 (a missing server is an error)",
                 os.environ.get("PERFLAB_STRICT") == "1")
    secret = "A-SECRET-" + secrets.token_hex(8)
    try:
        endpoints = hold_lab(secret, controls)
    except Exception as exc:  # blocked or broken: say how in the report, with the traceback
        lines = str(exc).strip().splitlines() or [""]
        # The first line says what failed, the last (a server's log) usually says why.
        why = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
        controls.add("holder", "setup() and use_caches() start A's servers", False,
                     f"{type(exc).__name__}: {why}")
        raise
    port = free_port()
    site = start_site(port, args.site_log)
    try:
        if controls.add("site (A's shop)", f"python -m perflab site --port {port} answers",
                        wait_for_site(port, site)):
            check_site(port, args.site_log, controls)
        endpoints.append(f"tcp:127.0.0.1:{port}")
        args.endpoints.write_text("".join(f"{endpoint}\n" for endpoint in endpoints))
        write_ready(args.ready, {"pid": os.getpid(), "site_port": port, "site_pgid": site.pid,
                                 "endpoints": endpoints})
        print(f"holder ready: site on port {port}; endpoints {endpoints}", flush=True)
        wait_for_stop(args.stop)
    finally:
        stop_site(site)
    print("holder stopping: perflab stops its servers at exit", flush=True)
    return 1 if controls.failed else 0


if __name__ == "__main__":
    sys.exit(main())
