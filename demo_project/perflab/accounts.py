"""Decide which OS account a server runs as, and tie its life to the process that starts it.

PostgreSQL refuses to run as root, so root hands it to the ``postgres`` account. On Linux every
server is launched through util-linux ``setpriv``, which switches the account if asked and sets
the parent-death signal: the kernel stops the server the moment its parent dies, even by SIGKILL.
Without ``setpriv`` (macOS, Windows) the account switch falls back to Popen's own options and
only the reaper (see ``perflab.processes``) catches leftovers.

Importing this module works on any OS; ``pwd`` is optional.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import sys
from typing import TYPE_CHECKING, Any

from perflab.errors import ServiceUnavailable

try:
    import pwd
except ImportError:  # Windows: nothing here can run, but importing perflab must still work
    pwd = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from pwd import struct_passwd as Account

__all__ = ["account_named", "as_user", "current_user", "is_root", "kill_with_parent", "setpriv"]


def current_user() -> str:
    """Return this process's user name (its uid when the name can't be found)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def is_root() -> bool:
    """Return True when this process runs as root (never on Windows)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def account_named(name: str) -> Account | None:
    """Return the OS account called ``name``, or None (no such user, or no ``pwd`` here)."""
    if pwd is None:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def kill_with_parent(
    stop_signal: int, account: Account | None, *, strict: bool
) -> tuple[list[str], dict[str, Any]]:
    """Return the command prefix (and Popen options) that stop the server if we die.

    The server also runs as ``account`` when one is given. ``strict`` refuses to go on without
    the parent-death signal on Linux, where ``setpriv`` should be installed.
    """
    found = setpriv()
    if found is None:
        if strict and sys.platform.startswith("linux"):
            raise ServiceUnavailable(
                "setpriv (util-linux) is missing, so a killed kernel would leave servers running "
                "until the next start. Install util-linux, or unset PERFLAB_STRICT."
            )
        return as_user(account)
    # setpriv sets the death signal after switching user, so the uid change can't clear it.
    prefix = [found, "--pdeathsig", signal.Signals(stop_signal).name]
    if account is not None:
        prefix += _setpriv_user(account)
    return prefix, {}


def as_user(account: Account | None) -> tuple[list[str], dict[str, Any]]:
    """Return how to run a command as `account`: a setpriv prefix, or Popen's own options."""
    if account is None:
        return [], {}
    found = setpriv()
    if found is not None:
        return [found, *_setpriv_user(account)], {}
    return [], {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def setpriv() -> str | None:
    """Return util-linux ``setpriv``'s path on Linux, else None."""
    return shutil.which("setpriv") if sys.platform.startswith("linux") else None


def _setpriv_user(account: Account) -> list[str]:
    return ["--reuid", str(account.pw_uid), "--regid", str(account.pw_gid), "--init-groups"]
