"""The lab's methods for lessons 15-18, which leave Django's ORM: one mixin per lesson."""

from __future__ import annotations

from perflab.browser import Browsing
from perflab.frameworks import Frameworks
from perflab.interpreters import Interpreters
from perflab.native import Native

__all__ = ["Beyond"]


class Beyond(Browsing, Interpreters, Native, Frameworks):
    """Mix into ``perflab.lab.Lab`` the methods of lessons 15 (browser), 16 (PyPy), 17 (native
    code) and 18 (other ORMs and frameworks); each lives in its own module."""
