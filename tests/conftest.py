"""Shared fixtures: every test run gets its own perflab state folder and a tiny lab."""

from __future__ import annotations

import os
import tempfile

import pytest

# Tests must never touch a learner's real templates, lab copies or servers. Set before any
# perflab import so every module (and every kernel nbval starts) sees the same folder.
os.environ.setdefault("PERFLAB_HOME", tempfile.mkdtemp(prefix="perflab-tests-"))


@pytest.fixture(scope="session")
def lab():
    """Return a lab at the tiny scale; tests that change rows must undo it or call reset()."""
    from perflab import setup

    return setup(scale="tiny", quiet=True)
