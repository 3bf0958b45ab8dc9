"""Format numbers the way the lessons' prose says them: ratios, bytes, milliseconds."""

from __future__ import annotations

import math

__all__ = ["describe_ratio", "format_bytes", "format_ms", "format_ratio", "plural", "safe_ratio"]


def format_ratio(ratio: float) -> str:
    """Return a ratio rounded the way prose says it: 38, 2.5, 3 (not 3.0)."""
    if math.isinf(ratio) or math.isnan(ratio):
        return "\u221e" if math.isinf(ratio) else "?"
    if round(ratio, 1) >= 10:
        return str(round(ratio))
    text = f"{ratio:.1f}"
    return text.removesuffix(".0")


def format_bytes(size: int | None) -> str:
    """Return a size the way a person reads it: 812 B, 3.4 KiB, 12.1 MiB; "-" when unknown."""
    if size is None:
        return "-"
    if abs(size) < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if abs(value) < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


def safe_ratio(numerator: float, denominator: float) -> float:
    if denominator == 0:
        return math.inf if numerator > 0 else 1.0
    return numerator / denominator


def format_ms(value: float) -> str:
    """Format milliseconds with about three significant figures."""
    if math.isnan(value):
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"



def describe_ratio(speedup: float, *, times: str = "\u00d7") -> str:
    """Return a speedup as a table says it: 3.2 times faster or 1.4 times slower, shortened."""
    if speedup >= 1:
        return f"{format_ratio(speedup)}{times} faster"
    return f"{format_ratio(1 / speedup)}{times} slower" if speedup > 0 else "-"

