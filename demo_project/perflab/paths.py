"""Where perflab keeps its per-user state: template databases, lab copies, server folders.

Everything lives under one root per user, readable by that user alone (0700), so learners
sharing a JupyterHub host never see each other's files. Server sockets live in a *short* private
folder (`runtime_dir`), because a Unix socket's path is capped near 107 bytes and hub home
folders can be long.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from perflab.errors import PerflabError

__all__ = [
    "REPO_ROOT", "SOCKET_ROOM", "remembered_temp_dir", "runtime_dir", "state_dir", "state_root",
]

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Bytes a server's socket path may add below the runtime folder ("/redis-0123abcd/redis.sock").
SOCKET_ROOM = 40
_SUN_PATH_MAX = 107  # Linux's sun_path is 108 bytes with the final NUL; macOS's is 104
_checked_roots: set[Path] = set()


class StateFolderError(PerflabError, OSError):
    """Raise when the state folder can't be created or is not private to this user."""


def state_root() -> Path:
    """Return this user's state root, created 0700 (``PERFLAB_HOME`` or ~/.cache/perflab)."""
    root = os.environ.get("PERFLAB_HOME")
    if root:
        base, source = Path(root).expanduser(), "PERFLAB_HOME"
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base, source = Path(cache) / "perflab", "the default state folder"
    if base not in _checked_roots:
        _make_private(base, source)
        _checked_roots.add(base)
    return base


def state_dir(*parts: str) -> Path:
    """Return (and create) a folder under the per-user state root, private to this user.

    ``PERFLAB_HOME`` overrides the root (tests use a temporary folder).
    """
    base = state_root()
    # mkdir(parents=True) would give intermediate folders the umask's mode (often 0755);
    # create each level ourselves so nothing under the root is readable by other users.
    current = base
    try:
        for part in parts:
            current = current / part
            current.mkdir(exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StateFolderError(f"Cannot create {current}: {exc.strerror}.") from exc
    return current


def runtime_dir() -> Path:
    """Return a short folder, private to this user, for server sockets.

    The state root itself when its path is short enough; otherwise a folder with a random name
    in the temp directory (never a predictable name another user could create first), whose
    path the state root remembers so every kernel of this user finds the same one.
    """
    inside = state_dir("run")
    if len(str(inside)) + SOCKET_ROOM <= _SUN_PATH_MAX:
        return inside
    return remembered_temp_dir(state_root() / "run-dir", prefix="perflab-")


def remembered_temp_dir(
    pointer: Path, *, prefix: str, owner: tuple[int, int] | None = None
) -> Path:
    """Return a randomly named 0700 folder in the temp dir, the same one every time.

    ``pointer`` (a file in the state root) remembers it. A remembered folder is used again only
    if it is still a real folder (not a link), owned by ``owner`` (default: this user) and
    closed to everyone else; otherwise a new one is made, so another user can neither predict
    the name nor plant a folder of their own. ``owner`` is (uid, gid) to hand it to.
    """
    uid = owner[0] if owner else _my_uid(-1)
    with contextlib.suppress(OSError, ValueError):
        remembered = Path(pointer.read_text().strip())
        info = remembered.lstat()
        if (
            remembered.is_absolute()
            and stat.S_ISDIR(info.st_mode)
            and info.st_uid == uid
            and stat.S_IMODE(info.st_mode) & 0o077 == 0
        ):
            return remembered
    folder = Path(tempfile.mkdtemp(prefix=prefix))  # 0700, random name
    if owner:
        os.chown(folder, *owner)
    tmp = pointer.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(str(folder))
    tmp.replace(pointer)
    return folder


def _make_private(base: Path, source: str) -> None:
    """Create ``base`` as a 0700 folder of ours, or say in one line why it can't be."""
    hint = (
        "Point PERFLAB_HOME at a folder you own (or unset it)."
        if source == "PERFLAB_HOME"
        else "Set PERFLAB_HOME to a folder you own."
    )
    try:
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        info = base.lstat()
    except OSError as exc:
        raise StateFolderError(
            f"perflab cannot use {base} ({source}): {exc.strerror}. {hint}"
        ) from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != _my_uid(info.st_uid):
        raise StateFolderError(f"{base} ({source}) is not a folder of yours. {hint}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise StateFolderError(f"perflab cannot write to {base} ({source}). {hint}")
    if stat.S_IMODE(info.st_mode) & 0o077:
        base.chmod(0o700)  # made by an older perflab or by hand: others must not read it



def _my_uid(default: int) -> int:
    # Windows has no uids (and no other local users' sockets to fear): accept the owner.
    return os.geteuid() if hasattr(os, "geteuid") else default
