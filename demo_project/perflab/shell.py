"""Find the IPython shell perflab runs in, without importing IPython in a plain script."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__all__ = ["current_shell"]


def current_shell() -> InteractiveShell | None:
    """Return the running IPython shell (a notebook's kernel, say), or None outside IPython.

    Looks in ``sys.modules`` rather than importing IPython: a script that never loaded IPython
    is not running in it, and should not pay for the import.
    """
    ipython = sys.modules.get("IPython")
    return None if ipython is None else ipython.get_ipython()
