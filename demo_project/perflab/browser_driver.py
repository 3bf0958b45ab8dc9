"""Load pages in headless Chromium and print what the browser measured, as JSON on stdout.

``perflab.browser`` runs this as ``python -m perflab.browser_driver`` with a job (JSON on stdin)
rather than in the kernel: Playwright's sync API refuses to run inside the kernel's asyncio
loop, and a separate process keeps Chromium's memory and any crash out of the kernel. The
process is started with a parent-death signal; on it (SIGTERM) it kills every process below
it, Playwright's driver and Chromium's, so a killed kernel leaves no browser behind.

Each navigation gets a fresh browser context (an empty cache, no cookies), the variants take
turns round by round, and one untimed navigation first warms the browser itself up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import psutil

__all__ = ["main"]

#: What the page reports after its load event: Navigation and Paint Timing, and its scripts.
_READ_TIMINGS = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const paint = performance.getEntriesByName("first-contentful-paint")[0];
  const scripts = performance.getEntriesByType("resource")
    .filter(r => r.name.includes("/js/"))
    .map(r => ({name: r.name.split("/").pop().replace(".js", ""), start: r.startTime}));
  return {dcl: nav.domContentLoadedEventStart, load: nav.loadEventStart,
          fcp: paint ? paint.startTime : null, requested: scripts,
          ran: (window.thirdParty || []).map(s => ({name: s.name, at: s.at})),
          ran_before_dcl: window.perflabRanBefore.dcl,
          ran_before_load: window.perflabRanBefore.load};
}"""
#: Run before the page's own scripts: count the scripts that had run when each event fired.
#: (Comparing times can't tell: the clock is coarsened, and a deferred script that ran just
#: before DOMContentLoaded may share its time.)
_COUNT_AT_EVENTS = """
window.thirdParty = [];  // the demo scripts append to it as they run
window.perflabRanBefore = {dcl: null, load: null};
document.addEventListener("DOMContentLoaded", () => {
  window.perflabRanBefore.dcl = window.thirdParty.length; });
window.addEventListener("load", () => { window.perflabRanBefore.load = window.thirdParty.length; });
"""
_NOTE_CLICK = """() => document.addEventListener(
  "click", () => { window.perflabClickAt = performance.now(); }, {capture: true, once: true})"""


def _kill_descendants(signum: int, frame: FrameType | None) -> None:
    """Kill Playwright's driver and Chromium with us: our parent (the kernel) is gone."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
    os._exit(1)


def _tree_memory() -> int:
    """Return the memory of this process and all below it: the sum of their proportional set
    sizes (shared pages split between their users), or of resident sizes where there is no PSS."""
    total = 0
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            info = proc.memory_full_info()
            total += getattr(info, "pss", info.rss)
    return total


def _load(browser: Any, url: str, click: str | None, widget: str | None,
          memory: bool = False) -> dict[str, Any]:
    """Load ``url`` in a fresh context, click ``click`` if given; return the page's figures."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    context = browser.new_context()
    context.add_init_script(_COUNT_AT_EVENTS)
    try:
        page = context.new_page()
        page.goto(url, wait_until="load", timeout=30_000)
        # A page whose scripts block its first paint may paint after its load event. A page
        # with nothing to paint never does: its figure stays None (PageLoads says so).
        with contextlib.suppress(PlaywrightTimeout):
            page.wait_for_function(
                "performance.getEntriesByName('first-contentful-paint').length > 0",
                timeout=5_000,
            )
        sample: dict[str, Any] = page.evaluate(_READ_TIMINGS)
        if memory:  # while a page is open: the browser at its largest (reading PSS is slow)
            sample["memory"] = _tree_memory()
        if click:
            # The click's time in the page, not when Playwright was asked to click.
            page.evaluate(_NOTE_CLICK)
            page.dispatch_event(click, "click")
            if widget:
                page.wait_for_selector(widget, timeout=30_000)
            after = page.evaluate(_READ_TIMINGS)
            before = page.evaluate("window.perflabClickAt")
            sample["click"] = {
                "at": before,
                "requested": [r for r in after["requested"] if r["start"] >= before],
                "ran": [r for r in after["ran"] if r["at"] >= before],
                "widget_shown": bool(widget and page.query_selector(widget)),
            }
        return sample
    finally:
        context.close()


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Load every page of ``job`` for its rounds, turn about; return the samples and memory."""
    from playwright.sync_api import sync_playwright

    pages: dict[str, str] = job["pages"]
    clicks: dict[str, str] = job.get("click") or {}
    widget: str | None = job.get("widget")
    samples = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=job["executable"], args=job.get("args", []), headless=True
        )
        version = browser.version
        # Untimed: the browser's own first start, on the first page's site root (its own
        # third-party scripts would only add their delay). Memory is read here and at the end.
        first = urlsplit(next(iter(pages.values())))
        peak = _load(browser, f"{first.scheme}://{first.netloc}/", None, None,
                     memory=True)["memory"]
        names = list(pages)
        rounds = job.get("rounds", 3)
        for round_number in range(rounds):
            # Rotate who goes first, so no variant always pays for being first or last.
            shift = round_number % len(names)
            for name in names[shift:] + names[:shift]:
                last = round_number == rounds - 1 and name == names[shift - 1]
                sample = _load(browser, pages[name], clicks.get(name), widget, memory=last)
                peak = max(peak, sample.pop("memory", 0))
                samples.append({"variant": name, "round": round_number, **sample})
        browser.close()
    return {"browser": version, "samples": samples, "peak_memory": peak}


def main() -> None:
    signal.signal(signal.SIGTERM, _kill_descendants)
    job = json.load(sys.stdin)
    started = time.monotonic()
    result = run(job)
    result["seconds"] = time.monotonic() - started
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
