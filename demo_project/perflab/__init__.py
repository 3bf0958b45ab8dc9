"""perflab: the workshop's toolkit. One call gives a notebook a measured, isolated Django lab.

    from perflab import setup
    lab = setup()                      # Django configured, this kernel's own seeded database
    with lab.measure("naive") as m:    # queries and time of the block
        ...

Everything a lesson uses is here or on ``lab``: the lessons import from ``perflab`` alone.
"""

from __future__ import annotations

from .bootstrap import setup
from .charts import load_chart, scaling_chart
from .diagram import model_diagram
from .errors import PerflabError, PortInUse, ServiceUnavailable, StaleSchema, UnknownChoice
from .exercises import check, check_equal, check_queries
from .formatting import format_bytes, format_ms, format_ratio
from .lab import Lab
from .load import cpu_seconds
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
    "cpu_seconds",
    "format_bytes",
    "format_ms",
    "format_ratio",
    "load_chart",
    "model_diagram",
    "scaling_chart",
    "setup",
]
