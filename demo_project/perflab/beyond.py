"""The lab's methods for lessons 15-18, which leave Django's ORM, and the capstone (25)."""

from __future__ import annotations

from perflab.browser import Browsing
from perflab.capstone import Capstone
from perflab.frameworks import Frameworks
from perflab.interpreters import Interpreters
from perflab.native import Native

__all__ = ["Beyond"]


class Beyond(Browsing, Interpreters, Native, Frameworks, Capstone):
    """Mix into ``perflab.lab.Lab`` the methods of lessons 15 (browser), 16 (PyPy), 17 (native
    code), 18 (other ORMs and frameworks) and 25 (the capstone); each lives in its own module."""
