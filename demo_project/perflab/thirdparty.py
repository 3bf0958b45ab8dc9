"""A slow third-party script host for lesson 15: ``python -m perflab.thirdparty --delay-ms 300``.

It stands in for an analytics vendor's and a chat vendor's servers: ``GET /js/analytics.js``
and ``GET /js/chat-widget.js`` are answered after the delay, on another origin than the shop's,
as the real ones are. ``/ready`` is answered at once (``perflab.browser.ThirdPartyScripts``
waits on it); anything else is a 404. The scripts are the demo's own, a few lines each: they
note when they ran in ``window.thirdParty``, and the widget also spends main-thread time (as
real widgets do parsing their bundles) and draws a chat button into the page.
"""

from __future__ import annotations

import argparse
import time
from http.server import BaseHTTPRequestHandler

from perflab.upstream import serve

__all__ = ["SCRIPTS", "main"]

_NOTE = """(window.thirdParty = window.thirdParty || []).push({{
  name: "{name}", at: performance.now(), parsing: document.readyState === "loading"}});
"""
#: Script name -> its JavaScript. Both note when they ran; the widget also works and draws.
SCRIPTS = {
    "analytics.js": _NOTE.format(name="analytics"),
    "chat-widget.js": _NOTE.format(name="chat-widget") + """\
(function () {
  var until = performance.now() + BUSY_MS;  // a widget's bundle takes time to run
  while (performance.now() < until) {}
  var widget = document.createElement("div");
  widget.id = "chat-widget";
  widget.textContent = "Chat with us";
  (document.body || document.documentElement).appendChild(widget);
})();
""",
}


def _handler(delay_s: float, busy_ms: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body in two writes: no delayed-ACK wait

        def do_GET(self) -> None:
            name = self.path.split("?")[0].removeprefix("/js/")
            if self.path != "/ready" and name not in SCRIPTS:
                self.send_error(404)
                return
            body = b"ready"
            if self.path != "/ready":
                time.sleep(delay_s)
                body = SCRIPTS[name].replace("BUSY_MS", f"{busy_ms:g}").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript")
            # Each navigation in the lesson must download the scripts again (a cold cache).
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perflab.thirdparty")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=300.0)
    parser.add_argument("--busy-ms", type=float, default=50.0)
    args = parser.parse_args(argv)
    serve(args.port, _handler(args.delay_ms / 1000, args.busy_ms), backlog=128)


if __name__ == "__main__":
    main()
