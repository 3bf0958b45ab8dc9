"""Run a cell only where it can run honestly: ``%%requires django>=6.1`` skips it elsewhere.

A lesson may teach something a newer (or older) library brings, something only one database
does (``%%requires postgresql``), or something only a real server shows (``%%requires
memcached``). Elsewhere the cell says what it needs and what the kernel has, and shows nothing
else: no fake numbers.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, metadata

from packaging.requirements import InvalidRequirement, Requirement

from perflab.errors import PerflabError

__all__ = ["requirement_met"]


#: Database vendors a cell can ask for instead of a package, as Django's ``connection.vendor``.
VENDORS = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
#: Servers a cell can ask for: met where perflab can start one (its binary is installed).
#: ``postgres`` is the server (for ``with lab.using("postgres")``); ``postgresql`` the lab's vendor.
#: ``nginx`` is the edge ``lab.edge_cache`` starts; ``pgbouncer`` the pooler ``lab.pgbouncer``.
SERVERS = ("memcached", "redis", "postgres", "nginx", "pgbouncer")
#: Tools a cell can ask for, each with the function (``module:name``) that checks it is there and
#: works: it returns ``(True, "")`` or ``(False, one clear line with the install command)``.
TOOLS = {
    "chromium": "perflab.browser:browser_status",
    "pypy3": "perflab.interpreters:pypy_status",
    "c-compiler": "perflab.native:compiler_status",
    "pony": "perflab.frameworks:pony_status",
}


def requirement_met(spec: str) -> tuple[bool, str]:
    """Return whether ``spec`` (e.g. "django>=6.1", "postgresql") holds, and what to say if not."""
    if spec.strip().lower() in VENDORS:
        return _vendor_met(spec.strip().lower())
    if spec.strip().lower() in SERVERS:
        return _server_met(spec.strip().lower())
    if spec.strip().lower() in TOOLS:
        return _tool_met(spec.strip().lower())
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


def _server_met(name: str) -> tuple[bool, str]:
    from perflab import services

    if services.service_available(name):
        return True, ""
    return False, (
        f"Skipped: this cell needs a {name} server, which is not installed here.\n"
        f"{services.install_hint(name)}"
    )


def _tool_met(name: str) -> tuple[bool, str]:
    """Check a tool; a missing one is a skip for a learner and an error in strict mode (CI)."""
    from perflab import services
    from perflab.errors import ServiceUnavailable

    module_name, function_name = TOOLS[name].split(":")
    ok, why = getattr(import_module(module_name), function_name)()
    if ok:
        return True, ""
    if services.is_strict():
        raise ServiceUnavailable(f"PERFLAB_STRICT=1 and {name} is missing: {why}")
    return False, f"Skipped: this cell needs {name}. {why}"
