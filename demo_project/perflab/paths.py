"""Where perflab keeps its per-user state: template databases, lab copies, server folders."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_ROOT", "state_dir"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def state_dir(*parts: str) -> Path:
    """Return (and create) a folder under the per-user state root.

    One root per user, so learners sharing a JupyterHub host never touch each other's files.
    ``PERFLAB_HOME`` overrides it (tests use a temporary folder).
    """
    root = os.environ.get("PERFLAB_HOME")
    if root:
        base = Path(root).expanduser()
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = Path(cache) / "perflab"
    path = base.joinpath(*parts)
    # mkdir(parents=True) would give the intermediate folders the umask's mode (often 0755);
    # create each level ourselves so nothing under the root is readable by other users.
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    current = base
    for part in parts:
        current = current / part
        current.mkdir(exist_ok=True, mode=0o700)
    return path
