"""Show where a call spends its time: a short table of functions, without paths or line numbers.

pyinstrument samples the call stack; ``profile()`` folds its tree into one row per function
(the time inside it, callees included, as a share of the whole call), keeps the top rows and
names each function's module rather than its file: a table that reads the same on every
machine and every version of a library, unlike ``file.py:1216`` lists.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

__all__ = ["Profile", "ProfileRow", "profile"]

#: pyinstrument's sampling interval: fine enough for calls of a few tens of milliseconds.
INTERVAL = 0.0005


@dataclass(frozen=True)
class ProfileRow:
    """One function: where it lives and the share of the call spent inside it."""

    function: str
    module: str
    share: float


@dataclass(frozen=True)
class Profile:
    """The top functions of one profiled call; shows as a table."""

    rows: list[ProfileRow]
    total_seconds: float

    def __str__(self) -> str:
        width = max((len(r.function) for r in self.rows), default=8)
        modules = max((len(r.module) for r in self.rows), default=6)
        lines = [f"{'function':<{width}}  {'module':<{modules}}  time"]
        lines += [f"{r.function:<{width}}  {r.module:<{modules}}  {r.share:4.0%}"
                  for r in self.rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        e = html.escape
        body = "".join(
            f"<tr><td><code>{e(r.function)}</code></td><td>{e(r.module)}</td>"
            f"<td>{r.share:.0%}</td></tr>"
            for r in self.rows
        )
        return (
            "<table class='perflab-profile'><thead><tr><th>function</th><th>module</th>"
            f"<th>share of the time</th></tr></thead><tbody>{body}</tbody></table>"
        )


def profile(func: Callable[[], Any], *, top: int = 12, exclude: tuple[str, ...] = ()) -> Profile:
    """Run ``func()`` once under pyinstrument; return its ``top`` functions by time.

    Each row is one function, with the time spent in it and in what it called, as a share of
    the whole call (a function that appears at several depths counts once). Frames of the
    notebook itself (cells, IPython, this toolkit) and modules starting with ``exclude`` are
    left out: the table shows the library code under test.
    """
    from pyinstrument import Profiler

    profiler = Profiler(interval=INTERVAL)
    with profiler:
        func()
    session = profiler.last_session
    root = session.root_frame() if session is not None else None
    if root is None or root.time <= 0:
        return Profile([], 0.0)
    totals: dict[tuple[str, str], float] = {}
    _fold(root, totals, frozenset())
    skip = ("perflab", "IPython", "ipykernel", "pyinstrument", "<", *exclude)
    rows = [
        ProfileRow(function, module, min(1.0, seconds / root.time))
        for (function, module), seconds in totals.items()
        if module and not module.startswith(skip)
    ]
    rows.sort(key=lambda r: (-r.share, r.function))
    return Profile(rows[:top], root.time)


def _fold(frame: Any, totals: dict[tuple[str, str], float], above: frozenset) -> None:
    key = (_qualified_name(frame), module_of(frame.file_path or ""))
    if key not in above:  # recursion: a function inside itself is counted at its outer call
        totals[key] = totals.get(key, 0.0) + frame.time
    for child in frame.children:
        _fold(child, totals, above | {key})


def _qualified_name(frame: Any) -> str:
    cls = getattr(frame, "class_name", None)
    name = frame.function or "?"
    return f"{cls}.{name}" if cls else name


def module_of(path: str) -> str:
    """Return ``package.module`` for a source file path: the part after site-packages or lib."""
    if not path or path.startswith("<") or "ipykernel_" in path:
        return ""  # code typed in a cell or at a prompt: the caller, not the code under test
    parts = PurePath(path).with_suffix("").parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            parts = parts[parts.index(marker) + 1:]
            break
    else:
        # The standard library (".../lib/python3.11/json/encoder.py") or a project file.
        for i in range(len(parts) - 1, -1, -1):
            if parts[i].startswith("python3") or parts[i] in ("demo_project", "notebooks"):
                parts = parts[i + 1:]
                break
        else:
            parts = parts[-1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)
