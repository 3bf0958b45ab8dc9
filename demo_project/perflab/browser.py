"""Load the shop's pages in a real headless browser, with a slow third-party script host: lesson 15.

``lab.third_party_scripts(delay_ms)`` starts ``perflab.thirdparty`` (an analytics script and a
chat widget on another origin, each answered after the delay) as a recorded server that stops
with the kernel. ``lab.load_pages({label: url})`` loads each page in Chromium, a fresh context
(cold cache) per navigation, turn about for a few rounds, and returns
``perflab.page_loads.PageLoads``: the browser's own Navigation and Paint Timing, which scripts
were fetched and run when, and measurements for ``lab.compare``.

The browser is Playwright driving an installed Chromium (``browser_status`` finds one and
checks it really starts), from a child process (``perflab.browser_driver``): Playwright's sync
API will not run inside the kernel's event loop, and Chromium's memory and crashes stay out of
the kernel. That process gets a parent-death signal and kills its browser when it dies.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from perflab import accounts, services
from perflab.errors import PerflabError, ServiceUnavailable
from perflab.page_loads import PageLoads
from perflab.paths import REPO_ROOT
from perflab.web import DelayedService

__all__ = ["Browsing", "ThirdPartyScripts", "browser_status", "chromium_args", "find_browser"]

#: What to run when no browser is found or it does not start.
INSTALL = ("Install: sudo apt install chromium-headless-shell "
           "(or: python -m playwright install chromium-headless-shell)")
#: Programs on PATH that are Chromium, the light headless shell first (a full browser runs
#: more processes: more memory). Ubuntu's chromium-browser may be a snap stub.
_ON_PATH = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome",
            "google-chrome-stable")
#: Where ``python -m playwright install`` puts its builds, under its browsers folder.
_PLAYWRIGHT_BUILDS = (
    "chromium_headless_shell-*/chrome-headless-shell-*/chrome-headless-shell",
    "chromium_headless_shell-*/chrome-*/headless_shell",  # Playwright before 1.49
    "chromium-*/chrome-linux*/chrome",
    "chromium-*/chrome-mac*/*.app/Contents/MacOS/*",
)
_STATUS: tuple[bool, str] | None = None  # the answer, once per process: the check starts Chromium


def find_browser() -> str | None:
    """Return the Chromium to drive: ``PERFLAB_CHROMIUM``, Playwright's own build, then PATH."""
    override = os.environ.get("PERFLAB_CHROMIUM")
    if override:
        return shutil.which(override) or (override if Path(override).is_file() else None)
    folder = os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or str(
        Path.home() / ("Library/Caches" if sys.platform == "darwin" else ".cache") / "ms-playwright"
    )
    for pattern in _PLAYWRIGHT_BUILDS:
        found = sorted(glob.glob(os.path.join(folder, pattern)))
        if found:
            return found[-1]  # the newest build
    for name in _ON_PATH:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_args() -> list[str]:
    """Return the flags Chromium needs here, and those that keep it to few processes.

    A lesson's whole process tree must fit in 1 GB. Every Chromium process maps the same large
    program, so each one costs a lot of resident memory: one renderer, the GPU work in the
    browser process and no site isolation (the pages are the lab's own) keep their number down
    without changing how a page loads its scripts.
    """
    args = [
        "--disable-dev-shm-usage",  # containers give /dev/shm 64 MB; Chromium wants more
        "--disable-gpu", "--in-process-gpu",
        "--disable-site-isolation-trials", "--renderer-process-limit=1",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Chromium refuses to start as root with its sandbox (it can't drop privileges); a root
        # kernel is a container or CI, and the pages loaded are the lab's own. Without the
        # sandbox the zygote (a process that forks the sandboxed ones) has no job either.
        args += ["--no-sandbox", "--no-zygote"]
    return args


def browser_status() -> tuple[bool, str]:
    """Return whether a headless Chromium and Playwright work here, checked once per process.

    Found is not enough: Ubuntu's chromium-browser is a stub that asks for a snap, so the
    browser is started once (``--dump-dom about:blank``) before the answer is yes.
    """
    global _STATUS
    if _STATUS is None:
        _STATUS = _check_browser()
    return _STATUS


def _check_browser() -> tuple[bool, str]:
    import importlib.util

    if importlib.util.find_spec("playwright") is None:
        return False, "The playwright package is missing. Install: pip install playwright"
    browser = find_browser()
    override = os.environ.get("PERFLAB_CHROMIUM")
    if browser is None and override:
        return False, f"PERFLAB_CHROMIUM names {override}, which is not a program here. {INSTALL}"
    if browser is None:
        return False, f"No Chromium found (PERFLAB_CHROMIUM, Playwright's, on PATH). {INSTALL}"
    try:
        done = subprocess.run(
            [browser, *chromium_args(), "--headless", "--disable-gpu", "--dump-dom",
             "about:blank"],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{browser} did not start ({exc}). {INSTALL}"
    if done.returncode != 0 or "<html" not in done.stdout:
        said = (done.stderr or done.stdout).strip().splitlines()
        return False, f"{browser} did not start ({said[-1] if said else 'no output'}). {INSTALL}"
    return True, ""


class ThirdPartyScripts(DelayedService):
    """A local script host on its own origin that answers each script after ``delay_ms``."""

    name = "thirdparty"
    binary = "python"
    module = "perflab"
    packages = ("python3", "python", "python")
    default_delay_ms = 300.0
    answer = "script"
    ready_path = "/ready"

    def __init__(self, delay_ms: float | None = None, *, busy_ms: float = 50.0,
                 port: int | None = None, strict: bool = False) -> None:
        super().__init__(delay_ms, port=port, strict=strict)
        self.busy_ms = busy_ms

    def script_url(self, name: str) -> str:
        """Return a script's address, e.g. ``script_url("analytics.js")``."""
        return f"{self.url}/js/{name}"

    def _command(self) -> list[str]:
        return [self.require_binary(), "-m", "perflab.thirdparty", "--port", str(self.port),
                "--delay-ms", str(self.delay_ms), "--busy-ms", str(self.busy_ms)]

    def _environment(self) -> dict[str, str]:
        return {"PYTHONPATH": str(REPO_ROOT / "demo_project")}


class Browsing:
    """Mix into ``perflab.lab.Lab`` the methods of lesson 15: third-party scripts, a browser."""

    #: The chat widget's element, which the page shows once the widget has run.
    WIDGET = "#chat-widget"

    def third_party_scripts(
        self, delay_ms: float = 300.0, *, busy_ms: float = 50.0, strict: bool | None = None
    ) -> ThirdPartyScripts | None:
        """Start the slow script host (analytics.js, chat-widget.js) on a loopback port.

        ``busy_ms`` is how long the widget keeps the main thread busy when it runs. Returns
        None (a warning printed) if it can't start, or raises when strict.
        """
        strict = services.is_strict() if strict is None else strict
        try:
            services.reap_orphans()
            return ThirdPartyScripts(delay_ms, busy_ms=busy_ms, strict=strict).start()
        except ServiceUnavailable as exc:
            if strict:
                raise
            print(f"⚠️  {exc}")
            return None

    def load_pages(
        self,
        pages: dict[str, str],
        *,
        rounds: int = 3,
        click: dict[str, str] | None = None,
        timeout: float = 120.0,
    ) -> PageLoads:
        """Load each page ``rounds`` times in headless Chromium, turn about, a cold cache each.

        ``click`` maps a page's label to a selector to click after its load event; the browser
        then waits for the chat widget to appear and notes what it fetched and ran after the
        click. Raises ServiceUnavailable (with the install line) when there is no browser.
        """
        ok, why = browser_status()
        if not ok:
            raise ServiceUnavailable(f"This needs a headless Chromium. {why}")
        if rounds < 1 or not pages:
            raise PerflabError("load_pages() needs at least one page and one round.")
        job = {"executable": find_browser(), "args": chromium_args(), "pages": pages,
               "rounds": rounds, "click": click or {}, "widget": self.WIDGET}
        return PageLoads(_drive(job, timeout), list(pages))


def _drive(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``perflab.browser_driver`` on ``job`` and return its JSON; stop it if we die."""
    prefix, popen_kwargs = accounts.kill_with_parent(signal.SIGTERM, None,
                                                     strict=services.is_strict())
    command = [*prefix, sys.executable, "-m", "perflab.browser_driver"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "demo_project")}
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, **popen_kwargs) as driver:
        try:
            out, err = driver.communicate(json.dumps(job), timeout=timeout)
        except BaseException:  # a timeout, or the learner's interrupt: leave no browser behind
            driver.send_signal(signal.SIGTERM)
            driver.communicate()
            raise
    if driver.returncode != 0:
        tail = "\n".join(err.strip().splitlines()[-15:])
        raise PerflabError(f"The browser run failed (exit {driver.returncode}):\n{tail}")
    return json.loads(out)
