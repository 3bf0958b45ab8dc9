"""A slow third-party API for I/O-bound pages: ``python -m perflab.upstream --delay-ms 100``.

Every GET under ``/api/`` is answered after the delay with a small JSON body; ``/ready`` is
answered at once (``perflab.web.SlowUpstream`` waits on it); anything else is a 404. It holds
no data: on a shared host another user may call it, and learns the delay. One thread per
request, so a hundred clients wait a hundred delays side by side, as on a real remote service.
"""

from __future__ import annotations

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["main", "serve"]


def _handler(delay_s: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for
        # the client's delayed ACK of the headers, 40 ms more per answer on Linux.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            if self.path != "/ready" and not self.path.startswith("/api/"):
                self.send_error(404)
                return
            if self.path != "/ready":
                time.sleep(delay_s)
            body = json.dumps({"path": self.path, "delay_ms": delay_s * 1000}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a line per request would fill the log under load

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m perflab.upstream")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=100.0)
    args = parser.parse_args(argv)
    serve(args.port, _handler(args.delay_ms / 1000))


def serve(port: int, handler: type[BaseHTTPRequestHandler], *, backlog: int = 1024) -> None:
    """Serve ``handler`` on 127.0.0.1:``port``, a thread per request, until the process ends."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler, bind_and_activate=False)
    server.daemon_threads = True
    # listen()'s backlog: socketserver's default of 5 drops the SYNs of a burst of new
    # connections (an async page asking several things at once), and each dropped client
    # waits a second to try again, a delay that would be blamed on the page.
    server.request_queue_size = backlog
    try:
        server.server_bind()
        server.server_activate()
    except BaseException:
        server.server_close()
        raise
    server.serve_forever()


if __name__ == "__main__":
    main()
