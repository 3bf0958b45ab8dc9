"""nginx as a CDN's edge: a real caching reverse proxy in front of a served shop."""

from __future__ import annotations

import signal
import sys
import urllib.request
from typing import Any

import pytest

from perflab.edge import EdgeCache
from perflab.errors import PerflabError

pytestmark = pytest.mark.services

needs_nginx = pytest.mark.skipif(
    not EdgeCache.available() and not __import__("perflab.services").services.is_strict(),
    reason="nginx is not installed",
)


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


@needs_nginx
def test_the_edge_keeps_what_the_origin_lets_it_keep(lab: Any) -> None:
    origin = lab.serve()
    edge = lab.edge_cache(origin)
    try:
        path = "/healthz"  # no Cache-Control: the edge passes every request on
        assert [_get(edge.url + path)[1]["X-Cache"] for _ in range(2)] == ["MISS", "MISS"]
        status, _, body = _get(edge.url + "/", {"Accept-Encoding": "identity"})
        assert status == 200 and b"<html" in body.lower()
    finally:
        edge.stop()
        origin.stop()


@needs_nginx
def test_the_edge_keeps_a_file_the_origin_marks_cacheable(lab: Any, tmp_path: Any) -> None:
    from django.conf import settings
    from django.core.management import call_command
    from django.test import override_settings

    whitenoise = {
        "STATIC_ROOT": str(tmp_path),
        "STORAGES": {**settings.STORAGES, "staticfiles": {
            "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}},
        "MIDDLEWARE": [settings.MIDDLEWARE[0], "whitenoise.middleware.WhiteNoiseMiddleware",
                       *settings.MIDDLEWARE[1:]],
    }
    with override_settings(**whitenoise):
        call_command("collectstatic", interactive=False, verbosity=0)
        from django.contrib.staticfiles.storage import staticfiles_storage

        path = staticfiles_storage.url("admin/css/base.css")
    origin = lab.serve(settings=whitenoise)
    edge = lab.edge_cache(origin)
    passing = lab.edge_cache(origin, cache=False)
    try:
        br = {"Accept-Encoding": "br"}
        assert [_get(edge.url + path, br)[1]["X-Cache"] for _ in range(2)] == ["MISS", "HIT"]
        status, headers, body = _get(edge.url + path)  # no Brotli: another copy (Vary)
        assert status == 200 and headers["X-Cache"] == "MISS" and b"body" in body
        assert "immutable" in headers["Cache-Control"]
        assert [_get(passing.url + path)[1].get("X-Cache", "") for _ in range(2)] == ["", ""]
    finally:
        passing.stop()
        edge.stop()
        origin.stop()


def test_the_edge_takes_only_an_origin_on_this_machine() -> None:
    with pytest.raises(PerflabError, match="must be a server on this machine"):
        EdgeCache("http://example.com:80")


def test_a_missing_nginx_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(EdgeCache, "find_binary", classmethod(lambda cls: None))
    message = EdgeCache.missing_binary_message()
    assert "sudo apt-get install nginx" in message and "brew install nginx" in message


CHILD = """
import sys
from perflab import setup
lab = setup(scale="tiny", quiet=True)
origin = lab.serve()
edge = lab.edge_cache(origin)
import psutil
print(edge.pid, *(c.pid for c in psutil.Process(edge.pid).children()), flush=True)
sys.stdin.read()
"""


@needs_nginx
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="setpriv is Linux-only")
def test_a_killed_kernel_leaves_no_nginx(kernel_child: Any, gone: Any) -> None:
    child, pids = kernel_child(CHILD)
    assert len(pids) >= 2  # master, worker, cache manager and loader
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert gone(pids), f"nginx outlived the kernel: {pids}"
