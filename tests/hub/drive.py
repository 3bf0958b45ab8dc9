"""Drive a real JupyterHub as several learners at once: log in, start servers, run lessons.

Run as root by tests/hub/run.sh, with the workshop environment's Python (requests,
websocket-client and psutil come from the workshop lock). Everything a learner does goes through
the hub's REST API and each learner's own Jupyter server API: a PAM login on the hub's login
form, a token asked for with that session, ``POST /hub/api/users/{name}/server``, a session
(kernel) per lesson through ``/user/{name}/api/sessions``, and each code cell sent as an
``execute_request`` on the kernel's websocket. Meanwhile a sampler adds up the memory (resident
and proportional) and CPU time of every learner's processes, by uid, and the hub's and its
proxy's memory.

    drive.py --hub-url URL --learners hubl1,hubl2 --passwords FILE --lesson PATH ...
             --attack attack.py --shared DIR --hub-pid PID --report FILE

The pure parts (output comparison, sizing arithmetic) are tested in tests/test_hub_driver.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CHECKED",
    "Sampler",
    "attack_report_rows",
    "coalesce_outputs",
    "committed_cells",
    "main",
    "mismatched_cells",
    "ram_mb",
    "sizing_lines",
    "summary_lines",
]

CHECKED = "nbval-check-output"
RAISES = "raises-exception"
CELL_TIMEOUT_S = 300
SPAWN_TIMEOUT_S = 180
OS_HEADROOM_MB = 1024  # the OS, page cache, sshd: an assumption (perflab/classroom.py's too)
TLJH_HUB_ALLOWANCE_MB = 128  # TLJH's resource-estimation page allows this much for the hub


# --- pure parts ----------------------------------------------------------------------------------


def coalesce_outputs(outputs: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """Return a cell's outputs as (kind, text), streams merged as nbval merges them.

    Only what nbval --lax compares for these lessons' checked cells: stream text (stdout and
    stderr apart) and text/plain of results and displays. Images are left out (nbval compares
    them byte for byte, and no checked cell of the lessons run here draws one).
    """
    merged: list[tuple[str, str]] = []
    for output in outputs:
        kind = output.get("output_type") or output.get("msg_type")
        if kind == "stream":
            name, text = output["name"], _text(output["text"])
            if merged and merged[-1][0] == name:
                merged[-1] = (name, merged[-1][1] + text)
            else:
                merged.append((name, text))
        elif kind in ("execute_result", "display_data"):
            plain = output.get("data", {}).get("text/plain")
            if plain is not None:
                merged.append(("text/plain", _text(plain)))
        elif kind == "error":
            merged.append(("error", f"{output.get('ename')}: {output.get('evalue')}"))
    # Trailing blanks are noise to nbval too (its reference and run differ only by them).
    return [(kind, "\n".join(line.rstrip() for line in text.rstrip().splitlines()))
            for kind, text in merged]


def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def committed_cells(notebook: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the notebook's code cells in order, each with source, tags and committed outputs."""
    cells = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        cells.append({"source": _text(cell["source"]),
                      "tags": list(cell.get("metadata", {}).get("tags", [])),
                      "outputs": coalesce_outputs(cell.get("outputs", []))})
    return cells


def mismatched_cells(cells: list[dict[str, Any]], ran: list[list[tuple[str, str]]]) -> list[str]:
    """Return one line per failure: any cell's error, or a checked cell that printed otherwise."""
    problems = []
    for index, (cell, got) in enumerate(zip(cells, ran, strict=True), start=1):
        errors = [text for kind, text in got if kind == "error"]
        if errors and RAISES not in cell["tags"]:
            problems.append(f"code cell {index}: {errors[0][:200]}")
        elif CHECKED in cell["tags"] and got != cell["outputs"]:
            want = " | ".join(text for _, text in cell["outputs"])[:120]
            seen = " | ".join(text for _, text in got)[:120]
            problems.append(f"code cell {index} (checked): expected {want!r}, got {seen!r}")
    return problems


def ram_mb(*, learners: int, learner_peak_mb: float, hub_mb: float,
           headroom_mb: float = OS_HEADROOM_MB) -> float:
    """Return the RAM a host needs for this many learners all at their peak at once."""
    return hub_mb + learners * learner_peak_mb + headroom_mb


def sizing_lines(*, learner_peak_mb: float, learner_pss_mb: float, hub_mb: float,
                 cpu_s: float, counts: Iterable[int] = (10, 20, 30),
                 cores: Iterable[int] = (4, 8, 16)) -> list[str]:
    """Return the sizing a host for The Littlest JupyterHub follows from this run, as lines.

    RAM: every learner at their peak at once. CPU: the lessons' CPU time is what a room of
    learners pressing Run All at the same moment must share, so it sets how long they wait.
    """
    lines = [f"RAM = hub {hub_mb:.0f} MB + K x {learner_peak_mb:.0f} MB (largest learner peak, "
             f"resident; {learner_pss_mb:.0f} MB with shared pages split) + {OS_HEADROOM_MB} MB "
             f"for the OS (assumed; TLJH's guide allows {TLJH_HUB_ALLOWANCE_MB} MB for the hub)"]
    for count in counts:
        need = ram_mb(learners=count, learner_peak_mb=learner_peak_mb, hub_mb=hub_mb)
        low = ram_mb(learners=count, learner_peak_mb=learner_pss_mb, hub_mb=hub_mb)
        lines.append(f"  {count:>3} learners at once: {need / 1024:.1f} GB "
                     f"({low / 1024:.1f} GB counting shared pages once)")
    lines.append(f"CPU: one learner's run of these lessons took {cpu_s:.1f} CPU-seconds; K "
                 "learners pressing Run All together wait about K x that / cores:")
    for count in counts:
        waits = ", ".join(f"{count * cpu_s / n:.0f} s on {n} cores" for n in cores)
        lines.append(f"  {count:>3} learners: {waits}")
    return lines


RECORD_KEYS = ("machine", "date", "learners", "lessons", "learner_peak_mb", "learner_peak_pss_mb",
               "hub_mb", "seconds", "cpu_s_per_learner", "cores_busy")


def summary_lines(report: dict[str, Any]) -> list[str]:
    """Return the run's table: each learner's lessons, peak and CPU, then isolation and sizing."""
    lines = ["", "Learners (all at once)",
             f"  {'learner':<8} {'server':>7} {'lessons (s)':<32} {'peak MB':>8} {'PSS MB':>7} "
             f"{'CPU s':>6}"]
    for learner, peak, pss in zip(report["per_learner"], report["learner_peak_mb"],
                                  report["learner_peak_pss_mb"], strict=True):
        lessons = ", ".join(f"{row['lesson'][:2]} {row['seconds']:.0f}"
                            + ("" if not row["problems"] else " FAILED")
                            for row in learner["lessons"])
        lines.append(f"  {learner['name']:<8} {learner['spawn_s']:>6.1f}s {lessons:<32} "
                     f"{peak:>8} {pss:>7} {learner['cpu_s']:>6.1f}")
        lines += [f"    - {problem}" for problem in learner["problems"]]
    lines += ["  peak MB: resident memory of all the learner's processes (as perflab's budget "
              "counts it; shared pages counted in each); PSS MB: the same with shared pages split",
              f"  hub + proxy peak: {report['hub_mb']} MB; the lessons ran {report['seconds']} s "
              f"with {report['cores_busy']} of {os.cpu_count()} cores busy on average "
              f"({report['samples']} samples)", "", "Isolation (while every server was up)"]
    for target, tried, result, detail in report["isolation"]:
        lines.append(f"  {result:<8} {target[:70]:<70} {tried[:60]}"
                     + (f"  [{detail[:80]}]" if detail else ""))
    counts = {v: sum(r[2] == v for r in report["isolation"])
              for v in ("REFUSED", "OK", "NOTE", "BREACH", "FAILED")}
    lines += ["  " + ", ".join(f"{n} {v.lower()}" for v, n in counts.items()), "",
              "Sizing for The Littlest JupyterHub (K learners at once)"]
    peaks = report["learner_peak_mb"] or [0]
    lines += ["  " + line for line in sizing_lines(
        learner_peak_mb=max(peaks), learner_pss_mb=max(report["learner_peak_pss_mb"] or [0]),
        hub_mb=report["hub_mb"], cpu_s=report["cpu_s_per_learner"])]
    return lines


# --- memory -------------------------------------------------------------------------------------


@dataclass
class Sampler:
    """Sample every learner's processes (by uid) and the hub's, every `interval` seconds."""

    uids: dict[str, int]
    hub_pid: int
    interval: float = 0.2
    peaks_mb: dict[str, float] = field(default_factory=dict)
    pss_peaks_mb: dict[str, float] = field(default_factory=dict)
    hub_peak_mb: float = 0.0
    cpu_s: dict[str, dict[int, float]] = field(default_factory=dict)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sampling in a thread of its own, so the lessons run while it samples."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait for the last sample, so the peaks are final."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def cpu_seconds(self, name: str) -> float:
        """Return the CPU time the learner's processes used (those alive at one sample or more)."""
        return sum(self.cpu_s.get(name, {}).values())

    def _run(self) -> None:
        import psutil

        by_uid = {uid: name for name, uid in self.uids.items()}
        while not self._stop.is_set():
            totals = dict.fromkeys(self.uids, 0.0)
            pss = dict.fromkeys(self.uids, 0.0)
            hub_total = 0.0
            hub_tree = self._hub_tree(psutil)
            for proc in psutil.process_iter(["pid", "uids", "memory_info", "cpu_times"]):
                info = proc.info
                if info["uids"] is None or info["memory_info"] is None:
                    continue
                rss = info["memory_info"].rss / 2**20
                name = by_uid.get(info["uids"].real)
                if name is not None:
                    totals[name] += rss
                    pss[name] += self._pss_mb(proc, psutil, rss)
                    times = info["cpu_times"]
                    if times is not None:
                        self.cpu_s.setdefault(name, {})[info["pid"]] = times.user + times.system
                elif info["pid"] in hub_tree:
                    hub_total += rss
            for name, total in totals.items():
                self.peaks_mb[name] = max(self.peaks_mb.get(name, 0.0), total)
                self.pss_peaks_mb[name] = max(self.pss_peaks_mb.get(name, 0.0), pss[name])
            self.hub_peak_mb = max(self.hub_peak_mb, hub_total)
            self.samples += 1
            self._stop.wait(self.interval)

    @staticmethod
    def _pss_mb(proc: Any, psutil: Any, rss: float) -> float:
        """Return the process's proportional share (PSS): shared pages split among their users.

        Summed over many processes, RSS counts PostgreSQL's shared buffers once per backend and
        Python's shared libraries once per interpreter; PSS adds up to what the machine holds.
        """
        try:
            return float(proc.memory_full_info().pss / 2**20)
        except (psutil.Error, AttributeError):
            return rss

    def _hub_tree(self, psutil: Any) -> set[int]:
        """Return the hub and its proxy: root's processes under the hub (learners' are theirs)."""
        try:
            hub = psutil.Process(self.hub_pid)
            return {hub.pid} | {child.pid for child in hub.children(recursive=True)
                                if child.uids().real == 0}
        except psutil.Error:
            return set()


# --- the hub and a learner's server -------------------------------------------------------------


@dataclass
class Learner:
    """One learner: name, password, hub token, open sessions and what happened to them."""

    name: str
    password: str
    token: str = ""
    kernels: dict[str, str] = field(default_factory=dict)  # lesson -> kernel id
    sessions: dict[str, str] = field(default_factory=dict)  # lesson -> session id
    lessons: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    spawn_s: float = 0.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def login(hub: str, learner: Learner) -> None:
    """Log in on the hub's login form (PAM), then ask the hub for an API token as that user."""
    import requests

    session = requests.Session()
    page = session.get(f"{hub}/hub/login", timeout=30)
    page.raise_for_status()
    xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.text)
    form = {"username": learner.name, "password": learner.password}
    if xsrf:
        form["_xsrf"] = xsrf.group(1)
    answer = session.post(f"{hub}/hub/login?next=", data=form, allow_redirects=False, timeout=60)
    if answer.status_code != 302:
        raise RuntimeError(f"login of {learner.name}: HTTP {answer.status_code}")
    headers = {"X-XSRFToken": session.cookies.get("_xsrf", "")}
    made = session.post(f"{hub}/hub/api/users/{learner.name}/tokens", headers=headers,
                        json={"note": "hub test", "expires_in": 3600}, timeout=30)
    if made.status_code not in (200, 201):
        raise RuntimeError(f"token for {learner.name}: HTTP {made.status_code} {made.text[:200]}")
    learner.token = made.json()["token"]


def api(hub: str, token: str, method: str, path: str, **kwargs: Any) -> Any:
    import requests

    headers = {"Authorization": f"token {token}", **kwargs.pop("headers", {})}
    return requests.request(method, f"{hub}{path}", headers=headers, timeout=60,
                            allow_redirects=False, **kwargs)


def start_server(hub: str, learner: Learner) -> None:
    """Ask the hub to start the learner's server and wait until the hub says it is ready."""
    started = time.monotonic()
    answer = api(hub, learner.token, "POST", f"/hub/api/users/{learner.name}/server")
    if answer.status_code not in (201, 202):
        raise RuntimeError(f"spawn {learner.name}: HTTP {answer.status_code} {answer.text[:200]}")
    while time.monotonic() - started < SPAWN_TIMEOUT_S:
        model = api(hub, learner.token, "GET", f"/hub/api/users/{learner.name}").json()
        server = model.get("servers", {}).get("")
        if server and server.get("ready"):
            learner.spawn_s = time.monotonic() - started
            return
        time.sleep(0.5)
    raise RuntimeError(f"{learner.name}'s server not ready after {SPAWN_TIMEOUT_S} s")


def open_kernel(hub: str, learner: Learner, lesson: str) -> str:
    """Open the lesson as a learner does (a session on its path); return the kernel id."""
    body = {"path": lesson, "name": Path(lesson).name, "type": "notebook",
            "kernel": {"name": "python3"}}
    answer = api(hub, learner.token, "POST", f"/user/{learner.name}/api/sessions", json=body)
    if answer.status_code != 201:
        raise RuntimeError(f"session for {lesson}: HTTP {answer.status_code} {answer.text[:200]}")
    model = answer.json()
    learner.sessions[lesson] = model["id"]
    learner.kernels[lesson] = model["kernel"]["id"]
    return str(model["kernel"]["id"])


class Kernel:
    """Talk to a kernel over its websocket, through the proxy and the learner's own server."""

    def __init__(self, hub: str, learner: Learner, kernel_id: str) -> None:
        import websocket

        self.session = uuid.uuid4().hex
        url = (hub.replace("http", "ws", 1)
               + f"/user/{learner.name}/api/kernels/{kernel_id}/channels?session_id={self.session}")
        self.socket = websocket.create_connection(
            url, header=[f"Authorization: token {learner.token}"], timeout=CELL_TIMEOUT_S)
        self.username = learner.name

    def run(self, code: str) -> list[dict[str, Any]]:
        """Execute one cell; return its iopub outputs once the kernel is idle again."""
        msg_id = uuid.uuid4().hex
        self.socket.send(json.dumps({
            "header": {"msg_id": msg_id, "username": self.username, "session": self.session,
                       "msg_type": "execute_request", "version": "5.3",
                       "date": datetime.datetime.now(datetime.UTC).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        outputs: list[dict[str, Any]] = []
        while True:
            message = json.loads(self.socket.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["header"]["msg_type"]
            if message.get("channel") == "iopub" and kind == "status":
                if message["content"]["execution_state"] == "idle":
                    return outputs
            elif message.get("channel") == "iopub" and kind in (
                    "stream", "execute_result", "display_data", "error"):
                outputs.append({"output_type": kind, **message["content"]})

    def close(self) -> None:
        """Close the websocket; the kernel itself stops with its session."""
        self.socket.close()


def run_lesson(hub: str, learner: Learner, lesson: str, notebook: Path) -> Kernel:
    """Run every code cell of the lesson in a kernel of its own; record what failed."""
    cells = committed_cells(json.loads(notebook.read_text()))
    started = time.monotonic()
    kernel = Kernel(hub, learner, open_kernel(hub, learner, lesson))
    ran = []
    for index, cell in enumerate(cells, start=1):
        got = coalesce_outputs(kernel.run(cell["source"]))
        ran.append(got)
        if any(kind == "error" for kind, _ in got) and RAISES not in cell["tags"]:
            ran += [[] for _ in cells[index:]]  # Run All stops at the first error, as nbval's
            break
    problems = mismatched_cells(cells, ran)
    seconds = time.monotonic() - started
    learner.lessons.append({"lesson": Path(lesson).stem, "seconds": round(seconds, 1),
                            "cells": len(cells),
                            "checked": sum(CHECKED in c["tags"] for c in cells),
                            "problems": problems})
    learner.problems += [f"{Path(lesson).stem}: {problem}" for problem in problems]
    log(f"{learner.name}: {Path(lesson).stem} {'passed' if not problems else 'FAILED'} "
        f"in {seconds:.0f} s ({len(cells)} cells)")
    return kernel


# --- isolation ----------------------------------------------------------------------------------

CACHES_CONTROL = r'''
import json, secrets, socket
def _exchange(path, payload, done):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5); s.connect(path); s.sendall(payload); data = b""
        while not done(data):
            chunk = s.recv(65536)
            if not chunk: break
            data += chunk
        return data
_secret = secrets.token_hex(8).encode()
_found = {}
_mc = lab.service("memcached")
_path = str(_mc.socket_path)
_exchange(_path, b"set hub-secret 0 0 16\r\n" + _secret + b"\r\n", lambda d: d.endswith(b"\r\n"))
_found["memcached"] = {"socket": _path, "ok": _secret in _exchange(
    _path, b"get hub-secret\r\n", lambda d: d.endswith(b"END\r\n"))}
_rd = lab.service("redis")
_path = str(_rd.socket_path)
_exchange(_path, b"*3\r\n$3\r\nSET\r\n$10\r\nhub-secret\r\n$16\r\n" + _secret + b"\r\n",
          lambda d: d.endswith(b"\r\n"))
_found["redis"] = {"socket": _path, "ok": _secret in _exchange(
    _path, b"*2\r\n$3\r\nGET\r\n$10\r\nhub-secret\r\n", lambda d: d.count(b"\r\n") >= 2)}
print("HUB-CONTROL " + json.dumps(_found))
'''

POSTGRES_CONTROL = r'''
import json
from django.db import connection
with lab.using("postgres"):
    with connection.cursor() as _cursor:
        _cursor.execute("SELECT current_user, count(*) FROM shop_review")
        _row = _cursor.fetchone()
    _where = connection.settings_dict
    _socket = f"{_where['HOST']}/.s.PGSQL.{_where['PORT'] or 5432}"
print("HUB-CONTROL " + json.dumps({"postgres": {"socket": _socket, "ok": _row[1] > 0,
                                               "user": _row[0]}}))
'''

ATTACK = r'''
import subprocess, pathlib
_report = pathlib.Path.home() / "hub-attack.tsv"
_done = subprocess.run(["/usr/bin/python3", {attack!r}, "attack", "--owner", {owner!r},
    "--baseline", {baseline!r}, "--entries", {entries!r}, "--expect", {expect!r},
    "--ignore", {shared!r}, "--report", str(_report)], capture_output=True, text=True, timeout=240)
print("HUB-ATTACK-EXIT", _done.returncode, _done.stderr[-300:].replace("\n", " "))
print(_report.read_text() if _report.exists() else "")
'''


def attack_report_rows(text: str) -> list[list[str]]:
    """Return attack.py's rows (target, tried, result, detail) from the text its cell printed.

    The detail may be empty, and a cell's printed lines reach us with trailing blanks removed.
    """
    rows = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[2] in ("REFUSED", "BREACH", "NOTE", "FAILED", "OK"):
            rows.append([*fields[:3], "\t".join(fields[3:])])
    return rows


def control_rows(output: list[tuple[str, str]], learner: str) -> tuple[list[list[str]], list[str]]:
    """Turn a control cell's printed JSON into rows and the endpoints it names."""
    rows, endpoints = [], []
    text = "\n".join(t for _, t in output)
    for line in text.splitlines():
        if line.startswith("HUB-CONTROL "):
            for service, seen in json.loads(line.removeprefix("HUB-CONTROL ")).items():
                rows.append([f"{learner}'s {service} ({seen['socket']})",
                             f"{learner} reads its own secret back (positive control)",
                             "OK" if seen["ok"] else "FAILED", ""])
                endpoints.append(f"unix:{seen['socket']}")
    if not rows:
        rows.append([f"{learner}'s servers", "positive control", "FAILED", text[-200:]])
    return rows, endpoints


def http_isolation(hub: str, attacker: Learner, owner: Learner) -> list[list[str]]:
    """Try the owner's server and hub API with the attacker's token; each must be refused."""
    rows = []
    tries = [
        ("GET", f"/user/{owner.name}/api/kernels", f"{owner.name}'s server: list kernels"),
        ("GET", f"/user/{owner.name}/api/contents", f"{owner.name}'s server: list files"),
        ("POST", f"/user/{owner.name}/api/kernels", f"{owner.name}'s server: start a kernel"),
        ("GET", f"/hub/api/users/{owner.name}", f"hub API: read {owner.name}"),
        ("POST", f"/hub/api/users/{owner.name}/tokens", f"hub API: a token for {owner.name}"),
        ("DELETE", f"/hub/api/users/{owner.name}/server", f"hub API: stop {owner.name}'s server"),
    ]
    for method, path, what in tries:
        answer = api(hub, attacker.token, method, path, json={} if method == "POST" else None)
        verdict = "REFUSED" if answer.status_code in (403, 404) else "BREACH"
        rows.append([what, f"{method} {path} with {attacker.name}'s token", verdict,
                     f"HTTP {answer.status_code}"])
    kernel_id = next(iter(owner.kernels.values()))
    try:
        import websocket

        url = hub.replace("http", "ws", 1) + f"/user/{owner.name}/api/kernels/{kernel_id}/channels"
        websocket.create_connection(url, header=[f"Authorization: token {attacker.token}"],
                                    timeout=10).close()
        rows.append([f"{owner.name}'s kernel", "open its websocket with "
                     f"{attacker.name}'s token", "BREACH", "connected"])
    except Exception as exc:  # any refusal will do; the row says which
        rows.append([f"{owner.name}'s kernel", f"open its websocket with {attacker.name}'s token",
                     "REFUSED", f"{type(exc).__name__}: {str(exc)[:80]}"])
    own = api(hub, owner.token, "GET", f"/user/{owner.name}/api/kernels")
    rows.append([f"{owner.name}'s server", f"{owner.name} lists its own kernels (positive control)",
                 "OK" if own.status_code == 200 else "FAILED", f"HTTP {own.status_code}"])
    return rows


# --- the whole run ------------------------------------------------------------------------------


def each(learners: list[Learner], work: Any) -> None:
    """Run work(learner) for all learners at once; a failure becomes that learner's problem."""
    def guarded(learner: Learner) -> None:
        try:
            work(learner)
        except Exception as exc:  # reported per learner; the run goes on
            learner.problems.append(f"{type(exc).__name__}: {exc}")
            log(f"{learner.name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=guarded, args=(learner,)) for learner in learners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def write_baseline(attack: Path, shared: Path) -> None:
    """Write what listens and what is in the shared temp folders before the lessons start.

    That is the hub's, the proxy's and the servers': not what the attack is about (the hub API
    checks cover the servers). attack.py attacks what is new since.
    """
    subprocess.run([sys.executable, str(attack), "listeners", "--out",
                    str(shared / "listeners.json")], check=True)
    entries = [f"{entry}\t{entry.lstat().st_uid}\t-" for top in ("/tmp", "/var/tmp", "/dev/shm")
               for entry in Path(top).iterdir()]
    (shared / "entries-before").write_text("\n".join(entries) + "\n")
    for name in ("listeners.json", "entries-before"):
        os.chmod(shared / name, 0o644)


def check_isolation(hub: str, attacker: Learner, owner: Learner,
                    kernels: dict[str, list[Kernel]], attack: Path,
                    shared: Path) -> list[list[str]]:
    """Control the owner's servers, then try them with the attacker's token and from its kernel."""
    log(f"isolation: {attacker.name} against {owner.name}, all servers up")
    rows, endpoints = [], []
    for kernel, code in zip(kernels[owner.name], (CACHES_CONTROL, POSTGRES_CONTROL), strict=False):
        found, named = control_rows(coalesce_outputs(kernel.run(code)), owner.name)
        rows += found
        endpoints += named
    expect = shared / "expect.txt"
    expect.write_text("\n".join(endpoints) + "\n")
    os.chmod(expect, 0o644)
    rows += http_isolation(hub, attacker, owner)
    code = ATTACK.format(attack=str(attack), owner=owner.name,
                         baseline=str(shared / "listeners.json"),
                         entries=str(shared / "entries-before"), expect=str(expect),
                         shared=str(shared.parent))
    text = "\n".join(t for _, t in coalesce_outputs(kernels[attacker.name][0].run(code)))
    attack_rows = attack_report_rows(text)
    if not attack_rows or "HUB-ATTACK-EXIT 0" not in text:
        rows.append([f"attack.py in {attacker.name}'s kernel", "run every attempt", "FAILED",
                     text[-200:]])
    return rows + [[f"[from {attacker.name}'s kernel] {r[0]}", *r[1:]] for r in attack_rows]


def stop_servers(hub: str, learners: list[Learner], kernels: dict[str, list[Kernel]]) -> None:
    """Shut the kernels down and stop every server through the API, as a learner's Stop does."""
    log("closing the kernels and stopping every server through the hub API")
    for learner in learners:
        for kernel in kernels[learner.name]:
            kernel.close()
        for session in learner.sessions.values():
            api(hub, learner.token, "DELETE", f"/user/{learner.name}/api/sessions/{session}")
        if learner.spawn_s:
            api(hub, learner.token, "DELETE", f"/hub/api/users/{learner.name}/server")
    deadline = time.monotonic() + 60
    for learner in (lr for lr in learners if lr.spawn_s):
        while api(hub, learner.token, "GET", f"/hub/api/users/{learner.name}").json().get(
                "servers"):
            if time.monotonic() > deadline:
                learner.problems.append("server still up 60 s after DELETE .../server")
                break
            time.sleep(0.5)


def build_report(learners: list[Learner], ready: list[Learner], sampler: Sampler, *,
                 lessons: list[str], lessons_s: float, total_s: float,
                 rows: list[list[str]]) -> dict[str, Any]:
    """Return the run's report: the keys of notebooks/recorded/hub.json and the details."""
    cpu = [sampler.cpu_seconds(lr.name) / lessons_s for lr in ready] if lessons_s else []
    return {
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
                   f"{_total_ram_gb():.0f} GB",
        "date": datetime.date.today().isoformat(),
        "learners": len(learners),
        "lessons": [Path(p).stem for p in lessons],
        "learner_peak_mb": [round(sampler.peaks_mb.get(lr.name, 0.0)) for lr in learners],
        "learner_peak_pss_mb": [round(sampler.pss_peaks_mb.get(lr.name, 0.0)) for lr in learners],
        "hub_mb": round(sampler.hub_peak_mb),
        "seconds": round(lessons_s, 1),
        "cpu_s_per_learner": round(max((sampler.cpu_seconds(lr.name) for lr in ready),
                                       default=0.0), 1),
        "cores_busy": round(sum(cpu), 2),
        "samples": sampler.samples,
        "total_seconds": round(total_s, 1),
        "per_learner": [{"name": lr.name, "spawn_s": round(lr.spawn_s, 1), "lessons": lr.lessons,
                         "cpu_s": round(sampler.cpu_seconds(lr.name), 1),
                         "problems": lr.problems} for lr in learners],
        "isolation": rows,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the classroom on the hub; write the report; 0 only if every learner and check passed."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub-url", required=True)
    parser.add_argument("--learners", required=True, help="names, comma-separated")
    parser.add_argument("--passwords", required=True, help="name<TAB>password per line")
    parser.add_argument("--lesson", action="append", required=True,
                        help="a notebook's path in each learner's home (repeatable, in order)")
    parser.add_argument("--attack", required=True, help="tests/isolation/attack.py, readable")
    parser.add_argument("--shared", required=True, help="a folder every learner can read")
    parser.add_argument("--hub-pid", type=int, required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--record", help="also write the figures here (as hub.json)")
    args = parser.parse_args(argv)

    import pwd

    passwords = dict(line.split("\t", 1) for line in Path(args.passwords).read_text().splitlines())
    learners = [Learner(name, passwords[name]) for name in args.learners.split(",")]
    hub, shared = args.hub_url.rstrip("/"), Path(args.shared)
    began = time.monotonic()

    log(f"logging in {len(learners)} learners at once (PAM, the hub's login form)")
    each(learners, lambda learner: login(hub, learner))
    log(f"starting {len(learners)} servers at once through the hub API")
    each([lr for lr in learners if lr.token], lambda learner: start_server(hub, learner))
    for learner in learners:
        log(f"{learner.name}: server ready after {learner.spawn_s:.1f} s")

    write_baseline(Path(args.attack), shared)

    sampler = Sampler({lr.name: pwd.getpwnam(lr.name).pw_uid for lr in learners}, args.hub_pid)
    sampler.start()
    ready = [lr for lr in learners if lr.spawn_s]
    kernels: dict[str, list[Kernel]] = {lr.name: [] for lr in learners}
    lessons_began = time.monotonic()

    def run_lessons(learner: Learner) -> None:
        home = Path(pwd.getpwnam(learner.name).pw_dir)
        for lesson in args.lesson:
            kernels[learner.name].append(run_lesson(hub, learner, lesson, home / lesson))

    log(f"running {', '.join(Path(p).stem for p in args.lesson)} in {len(ready)} kernels at once")
    each(ready, run_lessons)
    lessons_s = time.monotonic() - lessons_began

    if len(ready) >= 2 and all(len(kernels[lr.name]) == len(args.lesson) for lr in ready[:2]):
        try:
            rows = check_isolation(hub, ready[0], ready[1], kernels, Path(args.attack), shared)
        except Exception as exc:  # the servers must still stop and the report still be written
            rows = [["isolation", "run every check", "FAILED", f"{type(exc).__name__}: {exc}"]]
    else:
        rows = [["isolation", "two learners with their lessons done", "FAILED",
                 "fewer than two learners got that far"]]
    stop_servers(hub, learners, kernels)
    sampler.stop()
    report = build_report(learners, ready, sampler, lessons=args.lesson, lessons_s=lessons_s,
                          total_s=time.monotonic() - began, rows=rows)
    Path(args.report).write_text(json.dumps(report, indent=1) + "\n")
    print("\n".join(summary_lines(report)), flush=True)
    if args.record:
        record = {key: report[key] for key in RECORD_KEYS}
        Path(args.record).write_text(json.dumps(record, indent=1) + "\n")
        log(f"recorded {args.record}")
    failed = any(lr.problems for lr in learners) or any(
        r[2] in ("BREACH", "FAILED") for r in rows)
    return 1 if failed else 0


def _total_ram_gb() -> float:
    import psutil

    return float(psutil.virtual_memory().total / 2**30)


if __name__ == "__main__":
    sys.exit(main())
