"""Give each notebook a ready lab: Django configured in-process, its own seeded database copy.

``setup()`` is the one call at the top of every lesson. It configures the demo project, makes
sure a template database exists for the scale and schema (built once, seeded with raw bulk
writes), copies it for this kernel, and returns a :class:`Lab` whose methods measure what the
notebook runs. Calling it again in the same kernel gives a fresh copy; nothing leaks between
notebooks because each kernel gets its own database file (or PostgreSQL database).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from perflab import seed as seeding
from perflab.caches import CACHES
from perflab.errors import PerflabError, UnknownChoice
from perflab.lab import DATABASES, Lab, open_lab
from perflab.shell import current_shell

__all__ = ["CACHES", "DATABASES", "Lab", "setup"]


def setup(
    *,
    database: str | None = None,
    scale: str | None = None,
    cache: str = "locmem",
    name: str | None = None,
    quiet: bool = False,
) -> Lab:
    """Configure Django in this kernel and return a Lab with a fresh seeded database.

    ``database`` is "sqlite" (default, nothing to install) or "postgres" (a real server that
    perflab starts); ``scale`` defaults to ``$PERFLAB_SCALE`` or "small". Safe to call again.
    """
    _show_errors_in_one_line()
    source = None if database else "the PERFLAB_DATABASE environment variable"
    database = database or os.environ.get("PERFLAB_DATABASE") or "sqlite"
    if database not in DATABASES:
        raise UnknownChoice("database", database, DATABASES, source=source)
    scale_obj = seeding.resolve_scale(scale)
    if cache not in CACHES:
        raise UnknownChoice("cache", cache, CACHES)
    lab = open_lab(database=database, scale=scale_obj, cache=cache, name=_lab_name(name))
    _register_magics()
    if not quiet:
        _show(lab)
    return lab


def _lab_name(name: str | None) -> str:
    if not name:
        # Jupyter Server tells the kernel which notebook it serves; use it so files are findable.
        session = os.environ.get("JPY_SESSION_NAME", "")
        name = Path(session).stem if session else "lab"
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    if not cleaned:
        raise PerflabError(f"Lab name {name!r} has no usable characters; use letters or digits.")
    return cleaned[:60]



def _show_errors_in_one_line() -> None:
    """Show perflab's own errors as one line in a notebook: the message says what to do."""
    shell = current_shell()
    if shell is None:
        return

    def one_line(shell: Any, etype: type, value: BaseException, tb: Any,
                 tb_offset: int | None = None) -> list[str]:
        line = [f"{etype.__name__}: {value}"]
        # IPython ignores what a custom handler returns; _showtraceback is what ipykernel
        # turns into the cell's error output (the cell still fails, so Run All stops).
        shell._showtraceback(etype, value, line)
        return line

    shell.set_custom_exc((PerflabError,), one_line)


def _register_magics() -> None:
    shell = current_shell()
    if shell is not None:
        from perflab import magics

        magics.register_magics(shell)


def _show(lab: Lab) -> None:
    shell = current_shell()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        from IPython.display import display

        display(lab)
        return
    print(lab.summary())
    for note in lab.notes:
        print(f"⚠️  {note}")
