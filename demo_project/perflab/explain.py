"""Read query plans across vendors: SQLite's EXPLAIN QUERY PLAN and PostgreSQL's EXPLAIN ANALYZE.

``Explain.shape()`` drops costs, timings and row counts so a plan can be checked in a notebook;
``full_scans`` and ``uses_index`` answer the questions a lesson asks of a plan.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from perflab.errors import PerflabError

if TYPE_CHECKING:
    from django.db.models import QuerySet

__all__ = ["Explain", "explain"]

_SQLITE_ROW = re.compile(r"^(\d+) (\d+) (\d+) (.*)$")
_PG_NODE = re.compile(
    r"^(\s*->\s+)?(.*?)\s*(\(cost=[^)]*\))?\s*(\(actual[^)]*\)|\(never executed\))?$"
)
# Plan detail lines that are about the query, not about this run's data volume or timing.
_PG_KEPT_DETAILS = (
    "Index Cond:",
    "Filter:",
    "Hash Cond:",
    "Join Filter:",
    "Merge Cond:",
    "Recheck Cond:",
    "Sort Key:",
    "Presorted Key:",
    "Group Key:",
    "One-Time Filter:",
    "Order By:",
    "Cache Key:",
)


@dataclass(frozen=True)
class Explain:
    """Hold a query plan and answer the questions a lesson asks of it, across vendors."""

    text: str
    vendor: str
    analyze: bool = False

    def __str__(self) -> str:
        if self.vendor == "sqlite":
            nodes = _sqlite_nodes(self.text)
            if nodes is not None:
                return _sqlite_tree(nodes)
        if self.vendor == "postgresql" and self.analyze:
            return self.summary()
        return self.text

    def summary(self) -> str:
        """Return a PostgreSQL plan as its nodes with estimated and actual rows, and conditions.

        Costs, timings, buffers and memory change from run to run and bury the shape of the
        plan; the full plan stays one call away, in ``.text``.
        """
        lines = []
        for raw in _pg_plan_lines(self.text):
            stripped = raw.strip()
            match = _PG_NODE.match(raw.rstrip())
            if _is_pg_node(stripped, first=not lines) and match:
                lines.append((match.group(1) or "") + match.group(2).rstrip()
                             + _pg_rows(match.group(3), match.group(4)))
            elif stripped.startswith((*_PG_KEPT_DETAILS, "Rows Removed by")):
                lines.append(raw.rstrip())
        return "\n".join(lines) + "\n(costs, timings and buffers: print(plan.text))"

    def _repr_html_(self) -> str:
        return f"<pre class='perflab-explain'>{html.escape(str(self))}</pre>"

    @property
    def full_scans(self) -> list[str]:
        """Return the tables read row by row without an index: the usual slow part of a plan."""
        if self.vendor == "sqlite":
            scans = []
            for line in self.shape().splitlines():
                match = re.match(r"^\s*SCAN (\S+)(.*)$", line)
                if match and "USING" not in match.group(2) and _is_sqlite_table(match.group(1)):
                    scans.append(match.group(1))
            return scans
        if self.vendor == "postgresql":
            return re.findall(r"Seq Scan on (\S+)", self.text)
        raise self._unsupported("full_scans")

    def uses_index(self, name: str | None = None) -> bool:
        """Return whether the plan reads through an index (``name``, or any index at all)."""
        if self.vendor == "sqlite":
            indexes = re.findall(r"USING (?:COVERING )?INDEX (\S+)", self.text)
            if name is None:
                return bool(indexes) or bool(
                    re.search(r"USING (?:INTEGER )?PRIMARY KEY", self.text)
                )
            return name in indexes
        if self.vendor == "postgresql":
            indexes = re.findall(
                r"(?:Index Scan|Index Only Scan) using (\S+)|Bitmap Index Scan on (\S+)", self.text
            )
            names = [a or b for a, b in indexes]
            return bool(names) if name is None else name in names
        raise self._unsupported("uses_index")

    def shape(self) -> str:
        """Return the plan without costs, timings, row counts or node ids, for checked output."""
        if self.vendor == "sqlite":
            nodes = _sqlite_nodes(self.text)
            if nodes is None:
                return self.text.strip()
            return "\n".join("  " * depth + _sqlite_detail(detail) for depth, detail in nodes)
        if self.vendor == "postgresql":
            return _pg_shape(self.text)
        return self.text.strip()

    def _unsupported(self, what: str) -> PerflabError:
        return PerflabError(
            f"Explain.{what} reads SQLite and PostgreSQL plans; this one is from {self.vendor}. "
            "Read the plan text instead: print(plan)."
        )


def _sqlite_nodes(text: str) -> list[tuple[int, str]] | None:
    """Return (depth, detail) per plan row, from Django's ``id parent notused detail`` lines."""
    depth_of: dict[int, int] = {}
    nodes = []
    for line in text.strip().splitlines():
        match = _SQLITE_ROW.match(line.strip())
        if match is None:
            return None
        node_id, parent = int(match.group(1)), int(match.group(2))
        depth = depth_of.get(parent, -1) + 1
        depth_of[node_id] = depth
        nodes.append((depth, match.group(4)))
    return nodes


def _sqlite_detail(detail: str) -> str:
    # SQLite before 3.36 said "SCAN TABLE x"; newer versions say "SCAN x". Keep one spelling.
    detail = re.sub(r"^(SCAN|SEARCH) TABLE ", r"\1 ", detail)
    return re.sub(r"\s*\(~\d+ rows?\)", "", detail)


def _is_sqlite_table(name: str) -> bool:
    # "SCAN CONSTANT ROW" and "SCAN (subquery-1)" are not tables someone could index.
    return name != "CONSTANT" and not name.startswith("(") and name != "SUBQUERY"


def _sqlite_tree(nodes: list[tuple[int, str]]) -> str:
    """Draw the plan the way the sqlite3 shell does, which learners will meet elsewhere."""
    lines = ["QUERY PLAN"]
    for index, (depth, detail) in enumerate(nodes):
        prefix = ""
        for level in range(depth + 1):
            later_sibling = _has_later_sibling(nodes, index, level)
            if level == depth:
                prefix += "|--" if later_sibling else "`--"
            else:
                prefix += "|  " if later_sibling else "   "
        lines.append(prefix + _sqlite_detail(detail))
    return "\n".join(lines)


def _has_later_sibling(nodes: list[tuple[int, str]], index: int, level: int) -> bool:
    """Return whether a node at ``level`` follows before the branch containing ``index`` ends."""
    for depth, _ in nodes[index + 1 :]:
        if depth < level:
            return False
        if depth == level:
            return True
    return False


def _pg_plan_lines(text: str) -> list[str]:
    """Return the plan's own lines: up to the first top-level section after it (Planning: ...)."""
    lines: list[str] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        if not raw.startswith(" ") and lines:
            break  # Planning:, JIT:, Execution Time: ... follow the plan itself
        lines.append(raw)
    return lines


def _is_pg_node(stripped: str, *, first: bool) -> bool:
    return first or stripped.startswith("->") or bool(
        re.match(r"(InitPlan|SubPlan|CTE) ", stripped)
    )


def _pg_rows(cost: str | None, actual: str | None) -> str:
    """Return "  (rows: estimated E, actual A)" from a node's cost and actual parentheses."""
    estimated = re.search(r"rows=(\d+)", cost or "")
    real = re.search(r"rows=(\d+) loops=(\d+)", actual or "")
    parts = []
    if estimated:
        parts.append(f"estimated {int(estimated.group(1)):,}")
    if actual and "never executed" in actual:
        parts.append("never executed")
    elif real:
        loops = int(real.group(2))
        per_loop = f" in each of {loops:,} loops" if loops > 1 else ""
        parts.append(f"actual {int(real.group(1)):,}{per_loop}")
    return f"  (rows: {', '.join(parts)})" if parts else ""


def _pg_shape(text: str) -> str:
    lines = []
    for raw in _pg_plan_lines(text):
        stripped = raw.strip()
        if _is_pg_node(stripped, first=not lines):
            match = _PG_NODE.match(raw.rstrip())
            node = (match.group(1) or "") + match.group(2) if match else raw.rstrip()
            lines.append(node.rstrip())
        elif stripped.startswith(_PG_KEPT_DETAILS):
            lines.append(raw.rstrip())
    return "\n".join(lines)


def explain(
    queryset: QuerySet[Any], *, analyze: bool | None = None, using: str | None = None
) -> Explain:
    """Return the database's plan for ``queryset``, the way each vendor is best read.

    SQLite: EXPLAIN QUERY PLAN (it has no ANALYZE). PostgreSQL: EXPLAIN (ANALYZE, BUFFERS) by
    default, which really runs the query; pass ``analyze=False`` for the planner's guess only.
    """
    from django.db import connections

    if using is not None:
        queryset = queryset.using(using)
    vendor = connections[queryset.db].vendor
    if vendor == "postgresql":
        run = analyze is None or analyze
        text = queryset.explain(analyze=True, buffers=True) if run else queryset.explain()
        return Explain(text=text, vendor=vendor, analyze=run)
    if analyze:
        raise PerflabError(
            f"{vendor} has no EXPLAIN ANALYZE that Django can run; call explain() without "
            "analyze=True, or measure() the query to time it."
        )
    return Explain(text=queryset.explain(), vendor=vendor, analyze=False)

