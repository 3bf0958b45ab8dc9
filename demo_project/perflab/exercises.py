"""Check a learner's exercise answer and print feedback; never raise, so Run All never breaks.

Every check prints one line (✅ or ❌ or "Not attempted yet") and returns a Verdict: true or
false like a bool, so a solution cell can ``assert`` it, but it shows nothing as a cell's value,
so a learner's cell shows only the feedback line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["NOT_ATTEMPTED", "Verdict", "check", "check_equal", "check_queries"]

NOT_ATTEMPTED = (
    "Not attempted yet: replace `# your code here` with your solution, then run this cell again."
)

_MISSING: Any = object()


class Verdict:
    """Hold a check's outcome: truthy like a bool, invisible as a cell's output."""

    __slots__ = ("ok",)

    def __init__(self, ok: bool) -> None:
        self.ok = bool(ok)

    def __bool__(self) -> bool:
        return self.ok

    def __eq__(self, other: object) -> bool:
        return self.ok == (other.ok if isinstance(other, Verdict) else other)

    def __hash__(self) -> int:
        return hash(self.ok)

    def __repr__(self) -> str:
        return f"Verdict({self.ok})"

    def _ipython_display_(self) -> None:
        # The printed feedback line is the output; an extra "Out: True" would only distract.
        return None


def _say(ok: bool, message: str, hint: str = "") -> Verdict:
    mark = "\u2705" if ok else "\u274c"
    tail = f" Hint: {hint}" if hint and not ok else ""
    print(f"{mark} {message}{tail}")
    return Verdict(ok)


def _not_attempted() -> Verdict:
    print(f"\u23f3 {NOT_ATTEMPTED}")
    return Verdict(False)


def _raised(label: str, exc: Exception, hint: str) -> Verdict:
    detail = str(exc).strip()
    message = f"{label} raised {type(exc).__name__}" + (f": {detail}" if detail else "")
    return _say(False, message if message.endswith((".", "!", "?")) else message + ".", hint)


def _short(value: object, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception:  # a learner's object with a broken __repr__ must not break the check
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_stub(value: object) -> bool:
    # `answer = None  # your code here` and `answer = ...` are how stub cells leave an answer.
    return value is None or value is Ellipsis


def _evaluate(value: Any, label: str, hint: str) -> tuple[Any, Verdict | None]:
    """Call ``value`` if it is a function; return (its value, None) or (None, the feedback)."""
    if not callable(value):
        return value, None
    try:
        return value(), None
    except NotImplementedError:
        return None, _not_attempted()
    except Exception as exc:
        return None, _raised(label, exc, hint)


def check_equal(
    actual: Any, expected: Any, *, hint: str = "", label: str = "your answer"
) -> Verdict:
    """Print whether ``actual`` equals ``expected``; call ``actual`` first if it is a function."""
    actual, feedback = _evaluate(actual, label, hint)
    if feedback is not None:
        return feedback
    if _is_stub(actual) and not _is_stub(expected):
        return _not_attempted()
    try:
        ok = bool(actual == expected)
    except Exception as exc:  # e.g. comparing arrays or querysets that refuse ==
        return _raised(f"comparing {label}", exc, hint)
    if ok:
        return _say(True, f"{label} is correct \u2014 well done.")
    return _say(False, f"{label} is {_short(actual)}, expected {_short(expected)}.", hint)


def check(
    condition_or_callable: Any,
    *,
    expect: Any = _MISSING,
    hint: str = "",
    label: str = "your code",
) -> Verdict:
    """Print whether a condition holds (or, with ``expect``, equals it); never raise."""
    if expect is not _MISSING:
        return check_equal(condition_or_callable, expect, hint=hint, label=label)
    value, feedback = _evaluate(condition_or_callable, label, hint)
    if feedback is not None:
        return feedback
    if _is_stub(value):
        return _not_attempted()
    try:
        ok = bool(value)
    except Exception as exc:
        return _raised(label, exc, hint)
    return _say(ok, "Correct \u2014 well done." if ok else "Not yet.", hint)


def check_queries(
    func: Callable[[], Any],
    *,
    at_most: int,
    label: str = "your code",
    using: str = "default",
    hint: str = "",
    expect: Any = _MISSING,
) -> Verdict:
    """Run ``func`` once, print its query count against ``at_most``; never raise.

    With ``expect``, the result must also equal it, so returning nothing in zero queries
    does not pass.
    """
    if not callable(func):
        return _say(
            False,
            f"pass the function itself, e.g. check_queries(my_function, at_most={at_most}), "
            "without calling it.",
        )
    try:
        from perflab.measure import measure

        m = measure(label, func, repeat=1, warmup=0, using=using)
    except NotImplementedError:
        return _not_attempted()
    except Exception as exc:
        return _raised(label, exc, hint)
    # A stub that still returns None has sent no queries: nothing to judge yet.
    if m.result is None and m.query_count == 0 and expect is not None:
        return _not_attempted()
    count = f"{m.query_count} {'query' if m.query_count == 1 else 'queries'}"
    if m.query_count > at_most:
        return _say(False, f"{count}, expected at most {at_most}.", hint)
    if expect is not _MISSING:
        try:
            same = bool(m.result == expect)
        except Exception as exc:
            return _raised(f"comparing the result of {label}", exc, hint)
        if not same:
            return _say(
                False,
                f"{count}, but the result is {_short(m.result)}, expected {_short(expect)}.",
                hint,
            )
    return _say(True, f"{count} \u2014 well done.")
