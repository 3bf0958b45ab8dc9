"""Run a cell only where it can run honestly: ``%%requires django>=6.1`` skips it elsewhere.

A lesson may teach something a newer (or older) library brings, something only one database
does (``%%requires postgresql``), or something only a real server shows (``%%requires
memcached``). Elsewhere the cell says what it needs and what the kernel has, and shows nothing
else: no fake numbers.
"""

from __future__ import annotations

import ast
from importlib.metadata import PackageNotFoundError, metadata
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement

from perflab.errors import PerflabError

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["load_ipython_extension", "register_magics", "requirement_met"]


#: Database vendors a cell can ask for instead of a package, as Django's ``connection.vendor``.
VENDORS = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
#: Servers a cell can ask for: met where perflab can start one (its binary is installed).
SERVERS = ("memcached", "redis")


def requirement_met(spec: str) -> tuple[bool, str]:
    """Return whether ``spec`` (e.g. "django>=6.1", "postgresql") holds, and what to say if not."""
    if spec.strip().lower() in VENDORS:
        return _vendor_met(spec.strip().lower())
    if spec.strip().lower() in SERVERS:
        return _server_met(spec.strip().lower())
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as exc:
        raise PerflabError(
            f"%%requires needs a requirement like django>=6.1, not {spec!r}."
        ) from exc
    try:
        installed = metadata(requirement.name)
    except PackageNotFoundError:
        return False, f"Skipped: this cell needs {spec}, which is not installed in this kernel."
    if requirement.specifier.contains(installed["Version"], prereleases=True):
        return True, ""
    return False, (
        f"Skipped: this cell needs {spec}; this kernel has {installed['Name']} "
        f"{installed['Version']}."
    )


def _vendor_met(vendor: str) -> tuple[bool, str]:
    from django.db import connection

    if connection.vendor == vendor:
        return True, ""
    have = VENDORS.get(connection.vendor, connection.vendor)
    return False, f"Skipped: this cell needs a {VENDORS[vendor]} lab; this lab runs on {have}."


def _run_like_a_cell(shell: InteractiveShell, cell: str) -> Any:
    """Run ``cell`` in the user's namespace; return its last expression's value, as a cell shows it.

    Errors propagate and fail the cell as usual. The value returned by a cell magic is what
    IPython displays as the cell's result, so ``%%requires`` keeps a final table or plan visible.
    """
    code = shell.transform_cell(cell)
    tree = ast.parse(code)
    last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    if last is not None:
        tree.body.pop()
    shell.ex(compile(tree, "<cell>", "exec"))
    if last is None:
        return None
    value = shell.ev(compile(ast.Expression(last.value), "<cell>", "eval"))
    return None if code.rstrip().endswith(";") else value  # a final ";" hides it, as in a cell


def _server_met(name: str) -> tuple[bool, str]:
    from perflab import services

    if services.service_available(name):
        return True, ""
    apt = services._INSTALL_NAMES[name][0]
    return False, (
        f"Skipped: this cell needs a {name} server, which is not installed here "
        f"(sudo apt-get install {apt}, or see the README)."
    )


def register_magics(shell: InteractiveShell) -> None:
    """Register ``%%requires`` on ``shell`` (setup() does this in every lab)."""
    from IPython.core.magic import Magics, cell_magic, magics_class

    @magics_class
    class RequiresMagics(Magics):
        @cell_magic
        def requires(self, line: str, cell: str) -> Any:
            """Run the cell if the requirement on the first line is met; else say why not."""
            met, why = requirement_met(line.strip())
            if not met:
                print(why)
                return
            return _run_like_a_cell(self.shell, cell)

    shell.register_magics(RequiresMagics)


def load_ipython_extension(shell: InteractiveShell) -> None:
    """Let ``%load_ext perflab.requires`` work outside a lab too."""
    register_magics(shell)
