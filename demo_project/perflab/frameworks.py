"""The lab's methods for lesson 18 (its helper fills this docstring in)."""

from __future__ import annotations

__all__ = ["Frameworks"]


class Frameworks:
    """Mix into ``perflab.lab.Lab`` the methods of lesson 18."""
