"""Replay ``random.Random``'s draws for millions of rows at once, value for value, with numpy.

The seed data is defined by what a seeded ``random.Random`` returns, call after call: row 1's
``randint``, then its ``choices``, then row 2's... That loop costs several microseconds a row in
Python. Both ``random`` and numpy's ``MT19937`` are the reference Mersenne Twister, so numpy can
produce the same stream of 32-bit words in bulk; what makes replaying them hard is that a row
does not use a fixed number of words. ``randrange(n)`` draws ``n.bit_length()`` bits and draws
again while the value is ``>= n``, and a sentence's length decides how many words follow.

So each word becomes one character that says what the row's draws would make of it (its top
bits, and whether each bounded draw accepts it), a regular expression spells one row's draws,
and ``finditer`` finds every row's first word in C. The values are then read off row-parallel
with numpy. tests/test_seed.py checks the result against plain ``random.Random`` calls.

A plan is a tuple of draws: ``Below(n)`` is ``randrange(n)`` (``randint(a, b)`` is
``a + Below(b - a + 1)``, ``choice(seq)`` is ``Below(len(seq))``); ``FLOAT`` is ``random()``;
``Words(low, high)`` is ``choices(words, k=randint(low, high))``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FLOAT", "Below", "Draws", "Float", "Words", "draw"]

_BLOCK_WORDS = 1 << 20  # 4 MB of words per pass: big enough to amortise, small in memory
_TWO_POW_53 = 9007199254740992.0


@dataclass(frozen=True)
class Below:
    """``randrange(n)``: an int in ``[0, n)``, drawn by rejection like ``random._randbelow``."""

    n: int


@dataclass(frozen=True)
class Float:
    """``random()``: a float in ``[0, 1)`` made of two words, 53 bits."""


FLOAT = Float()


@dataclass(frozen=True)
class Words:
    """``choices(pool, k=randint(low, high))``: a length, then one ``random()`` per word."""

    low: int
    high: int

    @property
    def n(self) -> int:
        return self.high - self.low + 1


Draw = Below | Float | Words


@dataclass
class Draws:
    """One batch of consecutive rows: per draw, the values (``Words``: counts, then floats)."""

    rows: int
    values: list[Any]


def _mersenne(seed: str) -> np.random.Generator:
    # random.Random(seed)'s state copied into numpy's twister: same words from here on.
    state = random.Random(seed).getstate()[1]
    bits = np.random.MT19937()
    bits.state = {"bit_generator": "MT19937",
                  "state": {"key": np.array(state[:624], dtype=np.uint32), "pos": state[624]}}
    return np.random.Generator(bits)


def _limit(n: int) -> np.uint32:
    # getrandbits(k) is the word's top k bits, so "top k bits < n" is "word < n << (32 - k)".
    return np.uint32(n << (32 - n.bit_length()))


class _Plan:
    """A row's draws, compiled: how to turn words into characters, and the row's pattern."""

    def __init__(self, draws: tuple[Draw, ...]) -> None:
        self.draws = draws
        # Lengths need a value: keep the word's top bits. Other bounds get one bit each.
        self.top = max((d.n.bit_length() for d in draws if isinstance(d, Words)), default=0)
        bounds = sorted({d.n for d in draws if isinstance(d, Below)
                         and d.n.bit_length() > self.top})
        self.flags = {n: self.top + i for i, n in enumerate(bounds)}
        self.bits = self.top + len(bounds)
        if self.bits > 15:
            raise ValueError(f"too many different bounds in one row: {draws}")
        self.wide = self.bits > 8
        pattern = "".join(self._piece(d) for d in draws)
        self.regex = re.compile(pattern if self.wide else pattern.encode("latin-1"), re.DOTALL)

    def _class(self, accept: Any) -> str:
        """Return a character class of the characters (word summaries) ``accept`` takes."""
        code = "\\u{:04x}" if self.wide else "\\x{:02x}"
        ranges: list[list[int]] = []
        for v in range(1 << self.bits):
            if not accept(v):
                continue
            if ranges and ranges[-1][1] == v - 1:
                ranges[-1][1] = v
            else:
                ranges.append([v, v])
        if not ranges:
            raise ValueError("a draw that no word can satisfy")
        return "[" + "".join(code.format(a) if a == b else f"{code.format(a)}-{code.format(b)}"
                             for a, b in ranges) + "]"

    def _value(self, n: int) -> Any:
        # The value getrandbits(k) would give, read from a character's top bits.
        shift = self.top - n.bit_length()
        return lambda v: (v & ((1 << self.top) - 1)) >> shift

    def _accepts(self, n: int) -> Any:
        if n in self.flags:
            return lambda v: v >> self.flags[n] & 1
        value = self._value(n)
        return lambda v: value(v) < n

    def _piece(self, draw: Draw) -> str:
        if isinstance(draw, Float):
            return ".."
        accepts = self._accepts(draw.n)
        rejected = self._class(lambda v: not accepts(v)) + "*"
        if isinstance(draw, Below):
            return rejected + self._class(accepts)
        value = self._value(draw.n)
        lengths = "|".join(
            self._class(lambda v, j=j: value(v) == j) + f".{{{2 * (draw.low + j)}}}"
            for j in range(draw.n)
        )
        return f"{rejected}(?:{lengths})"

    def symbols(self, words: np.ndarray) -> bytes | str:
        """Return one character per word: its top bits and a bit per bound it falls under."""
        kind = np.uint16 if self.wide else np.uint8
        out = (words >> (32 - self.top)).astype(kind) if self.top else np.zeros(len(words), kind)
        for n, bit in self.flags.items():
            out |= (words < _limit(n)).astype(kind) << kind(bit)
        return out.astype("<u2").tobytes().decode("utf-16-le") if self.wide else out.tobytes()

    def starts(self, words: np.ndarray, limit: int) -> np.ndarray:
        """Return the first word of each whole row in ``words`` (which begins a row)."""
        spans = np.array([m.span() for m, _ in zip(self.regex.finditer(self.symbols(words)),
                                                    range(limit), strict=False)],
                         dtype=np.int64).reshape(-1, 2)
        # A row cut off by the end of the block does not match where it starts, and the
        # search goes on to match a "row" later on: keep only the run that follows from 0.
        joined = np.flatnonzero(spans[1:, 0] != spans[:-1, 1]) if len(spans) else []
        whole = len(spans) if len(joined) == 0 else int(joined[0]) + 1
        if len(spans) == 0 or spans[0, 0] != 0:
            return np.zeros(0, np.int64)
        return np.append(spans[:whole, 0], spans[whole - 1, 1])

    def values(self, words: np.ndarray, starts: np.ndarray) -> list[Any]:
        """Read every draw's values, all rows at once (``starts`` as from ``starts``)."""
        pos = starts[:-1].copy()
        out: list[Any] = []
        for draw in self.draws:
            if isinstance(draw, Float):
                out.append(_floats(words, pos))
                pos += 2
                continue
            value, pos = _below(words, pos, draw.n)
            if isinstance(draw, Below):
                out.append(value)
                continue
            counts = value + draw.low
            before = np.cumsum(counts) - counts
            flat = np.repeat(pos - 2 * before, counts) + 2 * np.arange(int(counts.sum()))
            out.append((counts, _floats(words, flat)))
            pos += 2 * counts
        return out


def _below(words: np.ndarray, pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    limit = _limit(n)
    pos = pos.copy()
    again = np.flatnonzero(words[pos] >= limit)
    while again.size:  # rejected words: try the next one, as _randbelow does
        pos[again] += 1
        again = again[words[pos[again]] >= limit]
    return (words[pos] >> (32 - n.bit_length())).astype(np.int64), pos + 1


def _floats(words: np.ndarray, pos: np.ndarray) -> np.ndarray:
    # random(): (a * 2**26 + b) / 2**53 with a, b the top 27 and 26 bits of two words; exact.
    high = (words[pos] >> 5).astype(np.float64)
    low = (words[pos + 1] >> 6).astype(np.float64)
    return (high * 67108864.0 + low) * (1.0 / _TWO_POW_53)


def draw(seed: str, plan: tuple[Draw, ...], rows: int) -> Iterator[Draws]:
    """Yield, batch after batch, what ``rows`` rows of ``plan`` draw from ``Random(seed)``."""
    compiled = _Plan(plan)
    twister = _mersenne(seed)
    carry = np.zeros(0, np.uint32)
    size = _BLOCK_WORDS
    while rows > 0:
        words = np.concatenate(
            (carry, twister.integers(0, 1 << 32, size=size, dtype=np.uint32))
        )
        starts = compiled.starts(words, rows)
        if len(starts) < 2:  # not one whole row in the block: read a bigger one
            carry, size = words, size * 2
            continue
        yield Draws(len(starts) - 1, compiled.values(words, starts))
        carry, rows = words[starts[-1]:], rows - (len(starts) - 1)
