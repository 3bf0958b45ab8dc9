"""Lesson 15's toolkit: finding a browser, the slow script host, the page and its facts."""

from __future__ import annotations

import os
import signal
import stat
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.test.utils import override_settings

from perflab import browser
from perflab.page_loads import PageLoads

needs_browser = pytest.mark.skipif(
    not browser.browser_status()[0] and not os.environ.get("PERFLAB_STRICT"),
    reason="no headless Chromium here",
)


@pytest.fixture
def fresh_status(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Forget the cached answer and hide Playwright's own builds, then restore the answer."""
    saved = browser._STATUS
    browser._STATUS = None
    monkeypatch.delenv("PERFLAB_CHROMIUM", raising=False)
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "no-builds"))
    yield
    browser._STATUS = saved


def test_status_says_what_is_missing_and_how_to_install(
    fresh_status: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    ok, why = browser.browser_status()
    assert not ok
    assert "No Chromium found" in why
    assert "sudo apt install chromium-headless-shell" in why
    assert "playwright install chromium-headless-shell" in why
    assert "\n" not in why


def test_a_browser_that_does_not_start_is_not_available(
    fresh_status: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stub = tmp_path / "chromium-browser"  # what Ubuntu installs in place of the snap
    stub.write_text("#!/bin/sh\necho \"Command '$0' requires the chromium snap to be installed.\"\n"
                    "exit 1\n")
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    ok, why = browser.browser_status()
    assert not ok
    assert "did not start" in why and "requires the chromium snap" in why
    assert "sudo apt install chromium" in why


def test_a_missing_override_is_named(
    fresh_status: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PERFLAB_CHROMIUM", str(tmp_path / "gone"))
    ok, why = browser.browser_status()
    assert not ok and f"PERFLAB_CHROMIUM names {tmp_path / 'gone'}" in why


def test_the_override_wins_over_path(
    fresh_status: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chosen = tmp_path / "my-chrome"
    chosen.write_text("#!/bin/sh\n")
    monkeypatch.setenv("PERFLAB_CHROMIUM", str(chosen))
    assert browser.find_browser() == str(chosen)


def test_playwright_s_own_headless_shell_is_found(
    fresh_status: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    build = (tmp_path / "no-builds" / "chromium_headless_shell-1200"
             / "chrome-headless-shell-linux64" / "chrome-headless-shell")
    build.parent.mkdir(parents=True)
    build.write_text("#!/bin/sh\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert browser.find_browser() == str(build)


def test_the_sandbox_is_turned_off_only_for_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "--no-sandbox" not in browser.chromium_args()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "--no-sandbox" in browser.chromium_args()


def test_the_script_host_answers_scripts_after_its_delay() -> None:
    with browser.ThirdPartyScripts(150).start() as host:
        started = time.monotonic()
        with urllib.request.urlopen(host.script_url("analytics.js")) as answer:
            body = answer.read().decode()
            assert answer.headers["Cache-Control"] == "no-store"
        assert time.monotonic() - started >= 0.15
        assert "thirdParty" in body
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{host.url}/js/secret.txt")


@pytest.fixture
def client(lab: object) -> Iterator[Client]:
    """Yield a test client, with the script host's origin set."""
    with override_settings(ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"],
                           THIRD_PARTY_SCRIPTS_ORIGIN="http://scripts.test"):
        yield Client()


def _head_and_body(client: Client, loading: str) -> tuple[str, str]:
    from shop.models import Product

    slug = Product.objects.order_by("id").first().slug
    response = client.get(f"/products/{slug}/scripts/{loading}/")
    assert response.status_code == 200
    head, _, body = response.content.decode().partition("</head>")
    return head, body


@pytest.mark.parametrize(("loading", "attribute"),
                         [("blocking", ""), ("defer", "defer "), ("async", "async ")])
def test_the_page_asks_for_both_scripts_as_told(
    client: Client, loading: str, attribute: str
) -> None:
    head, _ = _head_and_body(client, loading)
    for name in ("analytics", "chat-widget"):
        assert f'<script {attribute}src="http://scripts.test/js/{name}.js">' in head


def test_the_interaction_page_asks_for_the_widget_only_on_click(client: Client) -> None:
    head, body = _head_and_body(client, "interaction")
    assert "chat-widget" not in head
    assert '<script async src="http://scripts.test/js/analytics.js">' in head
    assert 'id="chat-open"' in body and "addEventListener(\"click\"" in body


def test_an_unknown_loading_mode_is_a_404(client: Client) -> None:
    from shop.models import Product

    slug = Product.objects.order_by("id").first().slug
    assert client.get(f"/products/{slug}/scripts/lazy/").status_code == 404


def _sample(variant: str, dcl: float, load: float, ran: list[tuple[str, float]],
            requested: list[str], click: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return one load's figures as the driver reports them (``ran`` in the order they ran)."""
    return {"variant": variant, "round": 0, "dcl": dcl, "load": load, "fcp": 10.0,
            "requested": [{"name": n, "start": 5.0} for n in requested],
            "ran": [{"name": n, "at": at} for n, at in ran],
            "ran_before_dcl": sum(1 for _, at in ran if at < dcl),
            "ran_before_load": sum(1 for _, at in ran if at < load),
            **({"click": click} if click else {})}


def test_the_timeline_keeps_document_order_only_before_domcontentloaded() -> None:
    loads = PageLoads({"browser": "1", "peak_memory": 0, "samples": [
        _sample("defer", 300, 310, [("analytics", 280), ("chat-widget", 290)],
                ["analytics", "chat-widget"]),
        _sample("async", 20, 300, [("chat-widget", 250), ("analytics", 260)],
                ["chat-widget", "analytics"]),
    ]}, ["defer", "async"])
    lines = loads.timeline().splitlines()
    assert "  ran before DOMContentLoaded: analytics then chat-widget" in lines
    assert "  ran after it, before load: analytics, chat-widget" in lines


def test_a_fact_that_differs_between_loads_is_said_to_vary() -> None:
    loads = PageLoads({"browser": "1", "peak_memory": 0, "samples": [
        _sample("async", 20, 300, [("analytics", 250)], ["analytics"]),
        _sample("async", 300, 310, [("analytics", 250)], ["analytics"]),
    ]}, ["async"])
    assert "  ran before DOMContentLoaded: varies" in loads.timeline().splitlines()


def test_figures_become_measurements_for_compare() -> None:
    loads = PageLoads({"browser": "1", "peak_memory": 0, "samples": [
        _sample("a", 100, 200, [], []), _sample("a", 120, 220, [], []),
        _sample("b", 10, 20, [], []), _sample("b", 12, 22, [], []),
    ]}, ["a", "b"])
    a, _ = loads.measurements("dcl")
    assert (a.label, a.times_ms, a.query_count) == ("a", [100.0, 120.0], 0)
    assert loads.median("b", "load") == 21.0
    with pytest.raises(Exception, match="metric"):
        loads.times("a", "paint")


@pytest.fixture
def page_at(tmp_path: Path) -> Iterator[Any]:
    """Return page_at(html): the URL of a page served from this test, on the loopback.

    Not a data: URL: Chromium keeps pages with no origin from fetching loopback scripts.
    """
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def serve(html: str) -> str:
        (tmp_path / "page.html").write_text(html)
        return f"http://127.0.0.1:{server.server_address[1]}/page.html"

    yield serve
    server.shutdown()
    server.server_close()


@needs_browser
def test_pages_load_in_chromium_with_the_facts_the_lesson_checks(page_at: Any) -> None:
    # The async script's host is the slower, so the deferred script surely runs first.
    with (browser.ThirdPartyScripts(100).start() as fast,
          browser.ThirdPartyScripts(600, busy_ms=10).start() as slow):
        url = page_at(f"<script defer src='{fast.script_url('analytics.js')}'></script>"
                      f"<script async src='{slow.script_url('chat-widget.js')}'></script><p>hi")
        loads = browser.Browsing().load_pages({"page": url}, rounds=2)
    assert loads.timeline().splitlines() == [
        "page",
        "  fetched before DOMContentLoaded: analytics, chat-widget",
        "  ran before DOMContentLoaded: analytics",
        "  ran after it, before load: chat-widget",
    ]
    assert loads.median("page", "load") >= 600


@needs_browser
def test_a_killed_kernel_leaves_no_chromium(kernel_child: Any, gone: Any, page_at: Any) -> None:
    import psutil

    # The page waits a minute for its script, so the kernel is killed mid-load.
    with browser.ThirdPartyScripts(60_000).start() as host:
        url = page_at(f"<script src='{host.script_url('analytics.js')}'></script><p>hi")
        child, pids = kernel_child(textwrap.dedent(f"""
            import threading, time, psutil
            from perflab import browser

            def launched(process):
                try:  # the browser Playwright launched, not the one browser_status() tried
                    return "--remote-debugging-pipe" in process.cmdline()
                except psutil.Error:
                    return False

            def report():
                me = psutil.Process()
                while not any(launched(p) for p in me.children(recursive=True)):
                    time.sleep(0.1)
                time.sleep(1)
                print(*[p.pid for p in me.children(recursive=True)], flush=True)

            threading.Thread(target=report, daemon=True).start()
            browser.Browsing().load_pages({{"slow": {url!r}}}, rounds=1)
        """))
        assert [pid for pid in pids if "chrom" in psutil.Process(pid).name()]
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        assert gone(pids, timeout=10)  # well before the page load would time out (30 s)
