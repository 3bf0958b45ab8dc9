"""Check the built site in a real headless browser: every page loads, shows its charts, links work.

The site is served from ``build/docs`` on 127.0.0.1 (a free port, for this check only) and each
page is opened in Chromium through Playwright: a page must answer 200, every image on it must
have loaded (a chart that did not is a broken image), a lesson page must show at least as many
images as its notebook has image outputs, and every link to another page of the site must reach
a page that exists, with the anchor it names. Links that leave the site (GitHub, Binder, the
docs of Django) are not followed: the check runs offline.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

__all__ = ["SiteReport", "check_site"]

_IMAGES_OF = ("return [...document.images].map("
              "i => [i.currentSrc || i.src, i.complete && i.naturalWidth > 0])")
_LINKS = "return [...document.querySelectorAll('a[href]')].map(a => a.href)"


@dataclass
class SiteReport:
    """What the browser saw: pages, images and internal links checked, and every problem."""

    pages: int = 0
    images: int = 0
    links: int = 0
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        head = (f"{self.pages} pages, {self.images} images loaded, {self.links} internal "
                f"links checked: {len(self.problems)} problems")
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _serve(folder: Path) -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _expected_images(notebook: Path) -> int:
    nb = json.loads(notebook.read_text())
    return sum(
        1
        for cell in nb["cells"]
        for output in cell.get("outputs", [])
        if {"image/png", "image/svg+xml"} & set(output.get("data", {}))
    )


def _ids(html: str) -> set[str]:
    return set(re.findall(r'\sid="([^"]+)"', html))


def check_site(site: Path, notebooks: Path, launch: dict) -> SiteReport:
    """Open every page of ``site`` in Chromium; ``launch`` is Playwright's launch arguments."""
    from playwright.sync_api import sync_playwright

    report = SiteReport()
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.parts)
    with _serve(site) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(**launch)
        try:
            tab = browser.new_page()
            for path in pages:
                relative = path.relative_to(site).as_posix()
                response = tab.goto(base + relative, wait_until="load")
                report.pages += 1
                if response is None or response.status != 200:
                    report.problems.append(f"{relative}: answered {response and response.status}")
                    continue
                images = tab.evaluate(f"() => {{ {_IMAGES_OF} }}")
                broken = [src for src, ok in images if not ok]
                report.images += len(images) - len(broken)
                report.problems += [f"{relative}: image did not load: {src}" for src in broken]
                notebook = notebooks / f"{path.stem}.ipynb"
                if path.parent.name == "notebooks" and notebook.exists():
                    wanted = _expected_images(notebook)
                    if len(images) - len(broken) < wanted:
                        report.problems.append(
                            f"{relative}: {len(images) - len(broken)} images shown, its notebook "
                            f"has {wanted} charts")
                for href in tab.evaluate(f"() => {{ {_LINKS} }}"):
                    if not href.startswith(base):
                        continue
                    report.links += 1
                    target, anchor = urldefrag(href)
                    file = site / unquote(urlparse(target).path).lstrip("/")
                    if file.is_dir():
                        file = file / "index.html"
                    if not file.exists():
                        report.problems.append(f"{relative}: broken link to {href[len(base):]}")
                    elif anchor and file.suffix == ".html" and anchor not in _ids(
                        file.read_text(errors="replace")
                    ):
                        report.problems.append(f"{relative}: no #{anchor} in {file.name}")
        finally:
            browser.close()
    return report
