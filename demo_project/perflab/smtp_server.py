"""A local SMTP server that asks for a password and takes its time: the shop's slow mail relay.

``python -m perflab.smtp_server --port P --delay-ms D --mailbox DIR`` (aiosmtpd) takes
``delay_ms`` to accept each recipient, as a busy relay or a third-party mail API would, and
keeps each message as a file in the mailbox folder (the first ``KEEP`` of them; later ones
are counted, not kept). It listens on 127.0.0.1 (Django's SMTP backend has no Unix socket
support) and refuses mail from anyone who has not logged in with the user and password in
``PERFLAB_SMTP_USER`` / ``PERFLAB_SMTP_PASSWORD`` (the environment, not the command line,
which every local user can read). ``perflab.tasks_worker.SmtpServer`` starts it.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import itertools
import os
import signal
from pathlib import Path
from typing import Any

__all__ = ["KEEP", "main"]

KEEP = 5000


class SlowMailbox:
    """aiosmtpd handler: wait before taking each recipient, then keep the message in the mailbox."""

    def __init__(self, delay_s: float, folder: Path) -> None:
        self.delay_s = delay_s
        self.folder = folder
        # A restarted server (after an outage) goes on counting where the last one stopped.
        self.numbers = itertools.count(_read_count(folder / "count") + 1)
        self.started = itertools.count(_read_count(folder / "started") + 1)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        # The wait comes before the message is sent, as at a relay that checks each recipient:
        # a client that gives up (or dies) meanwhile has sent nothing.
        (self.folder / "started").write_text(str(next(self.started)))
        await asyncio.sleep(self.delay_s)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        number = next(self.numbers)
        if number <= KEEP:
            (self.folder / f"{number:06d}.eml").write_bytes(envelope.original_content)
        (self.folder / "count").write_text(str(number))
        return "250 Message accepted for delivery"


def _read_count(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def _authenticator(user: str, password: str) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = (
            isinstance(data, LoginPassword)
            and hmac.compare_digest(data.login, user.encode())
            and hmac.compare_digest(data.password, password.encode())
        )
        return AuthResult(success=ok, handled=False)

    return check


def main(argv: list[str] | None = None) -> None:
    from aiosmtpd.controller import Controller

    parser = argparse.ArgumentParser(prog="python -m perflab.smtp_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--mailbox", type=Path, required=True)
    args = parser.parse_args(argv)
    user, password = os.environ["PERFLAB_SMTP_USER"], os.environ["PERFLAB_SMTP_PASSWORD"]
    args.mailbox.mkdir(mode=0o700, parents=True, exist_ok=True)
    controller = Controller(
        SlowMailbox(args.delay_ms / 1000, args.mailbox), hostname="127.0.0.1", port=args.port,
        authenticator=_authenticator(user, password), auth_required=True,
        auth_require_tls=False,  # loopback only; the password keeps other users out
    )
    controller.start()
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(stop.wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
