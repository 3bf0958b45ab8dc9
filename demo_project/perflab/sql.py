"""Shape SQL for reading: elide select lists, shorten long IN lists, key params for grouping.

Modelled on django-debug-toolbar's SQL panel: the column list is noise in an ORM query, the
FROM/JOIN/WHERE part says what it does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from sqlparse import lexer
from sqlparse import tokens as T

__all__ = ["elide", "params_key"]


def elide(sql: str) -> str:
    """Return ``sql`` with top-level select lists shortened to ``SELECT ... FROM``.

    The column list is the noise in an ORM query; the FROM/JOIN/WHERE/ORDER part says what it
    does. Like debug toolbar, a select list without a dot (``COUNT(*)``, ``(1) AS "a"``) is kept,
    because there it *is* the point of the query.
    """
    tokens = lexer.tokenize(sql)
    out: list[str] = []
    elision_allowed = True
    for ttype, value in tokens:
        out.append(value)
        if ttype in T.Keyword:
            keyword = value.upper()
            if elision_allowed and keyword == "SELECT":
                out.extend(_elide_select_list(tokens))
            # Only a SELECT that starts the statement or follows a set operator is top level;
            # one after WHERE ... IN ( is a subquery whose columns matter.
            elision_allowed = keyword.split()[0] in {"UNION", "INTERSECT", "EXCEPT", "ALL"}
    return _shorten_value_lists("".join(out))


# Items may be wrapped in their own parentheses: Django 6.1 writes IN ((9), (13), ...).
_LONG_IN_LIST = re.compile(r"\bIN \(((?:\(?[^(),]+\)?, ){5,}\(?[^(),]+\)?)\)")
# Django 5.2 writes some prefetches as ("t"."id" = 1 OR "t"."id" = 2 OR ...) instead of IN.
_LONG_OR_CHAIN = re.compile(r'\((("[^"]+"\."[^"]+") = [^()\s]+)((?: OR \2 = [^()\s]+){5,})\)')


def _shorten_value_lists(sql: str) -> str:
    """Shorten long ``IN (...)`` lists and ``OR`` chains to their first items and a count."""

    def in_list(match: re.Match[str]) -> str:
        items = match.group(1).split(", ")
        return f"IN ({', '.join(items[:3])}, ... {len(items)} values)"

    def or_chain(match: re.Match[str]) -> str:
        count = 1 + match.group(3).count(" OR ")
        return f"({match.group(1)} OR ... {count} alternatives)"

    return _LONG_OR_CHAIN.sub(or_chain, _LONG_IN_LIST.sub(in_list, sql))


def _elide_select_list(tokens: Iterator[tuple[Any, str]]) -> list[str]:
    """Consume tokens up to the top-level FROM; return what should replace them."""
    saved: list[str] = []
    prefix = " "
    has_dot = False
    depth = 0
    seen_code = False
    for ttype, value in tokens:
        if ttype in T.Punctuation:
            # A subquery in the select list has its own FROM; only depth 0 ends the list.
            depth += {"(": 1, ")": -1}.get(value, 0)
            has_dot = has_dot or value == "."
        if depth == 0 and ttype in T.Keyword and value.upper() == "FROM":
            return [*(saved if not has_dot else [prefix, "...", " "]), value]
        if not seen_code and ttype in T.Keyword and value.upper() == "DISTINCT":
            # DISTINCT changes the result, so it survives the elision.
            prefix = " DISTINCT "
        seen_code = seen_code or ttype not in T.Whitespace
        saved.append(value)
    return saved


def params_key(params: Any) -> str:
    # repr() because params may hold unhashable lists (as debug toolbar found out, issue 1091).
    if isinstance(params, list | tuple):
        return repr(tuple(params))
    return repr(params)
