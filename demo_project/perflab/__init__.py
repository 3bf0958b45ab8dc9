"""perflab: the workshop's toolkit. One call gives a notebook a measured, isolated Django lab.

    from perflab import setup
    lab = setup()                      # Django configured, this kernel's own seeded database
    with lab.measure("naive") as m:    # queries and time of the block
        ...
"""

from __future__ import annotations

from .bootstrap import Lab, setup
from .errors import PerflabError, PortInUse, ServiceUnavailable, StaleSchema, UnknownChoice
from .exercises import check, check_equal, check_queries
from .measure import format_bytes, format_ratio
from .seed import SCALES

__all__ = [
    "SCALES",
    "Lab",
    "PerflabError",
    "PortInUse",
    "ServiceUnavailable",
    "StaleSchema",
    "UnknownChoice",
    "check",
    "check_equal",
    "check_queries",
    "format_bytes",
    "format_ratio",
    "setup",
]
