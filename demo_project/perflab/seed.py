"""Deterministic shop data at named scales: the rows a seeded ``random.Random`` gives.

Each table's values are what a seeded ``random.Random`` returns, call after call (same scale,
same rows, every run). The big tables replay those calls in bulk with numpy (``perflab.draws``,
value for value the same); rows come out in batches, in the form the database stores, ready for
the driver's bulk path (``perflab.bulk`` writes them: ``executemany`` on SQLite, ``COPY`` on
PostgreSQL). ``python -m perflab bench-seed`` measures how fast a whole template builds.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .errors import UnknownChoice

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "SCALES",
    "SEED_VERSION",
    "Scale",
    "TableRows",
    "generate",
    "get_scale",
    "resolve_scale",
]

# Bump when the generated data (or how a template is finished, e.g. ANALYZE) changes, so
# template databases built before are rebuilt.
SEED_VERSION = 5

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 2 * 365 * 24 * 3600  # two years of history


@dataclass(frozen=True)
class Scale:
    """Row counts for one named scale."""

    name: str
    categories: int
    tags: int
    products: int
    customers: int
    reviews: int
    orders: int
    max_lines_per_order: int = 4
    max_tags_per_product: int = 4

    @property
    def approximate_rows(self) -> int:
        return (
            self.categories + self.tags + self.products * 3 + self.customers + self.reviews
            + self.orders * (1 + self.max_lines_per_order // 2)
        )


SCALES: dict[str, Scale] = {
    s.name: s
    for s in (
        # Unit tests: big enough for every relation to have rows, small enough to seed instantly.
        Scale("tiny", categories=5, tags=10, products=40, customers=30, reviews=300, orders=40),
        # CI and Binder: every notebook in seconds, well inside 1 GB.
        Scale("small", categories=20, tags=30, products=1_000, customers=500, reviews=20_000,
              orders=2_000),
        # A laptop: big enough that the slow way is visibly slow.
        Scale("default", categories=50, tags=60, products=10_000, customers=5_000,
              reviews=200_000, orders=20_000),
        # Partitioning and the capstone; opt-in.
        Scale("large", categories=100, tags=100, products=50_000, customers=50_000,
              reviews=2_000_000, orders=200_000),
    )
}


def get_scale(name: str, *, source: str | None = None) -> Scale:
    """Return the Scale called ``name``, or explain which names exist (and where it came from)."""
    try:
        return SCALES[name]
    except (KeyError, TypeError):
        raise UnknownChoice("scale", name, list(SCALES), source=source) from None


def resolve_scale(name: str | None = None) -> Scale:
    """Return the scale asked for, else ``$PERFLAB_SCALE``, else small; name the variable if bad."""
    if name:
        return get_scale(name)
    from_env = os.environ.get("PERFLAB_SCALE")
    if from_env:
        return get_scale(from_env, source="the PERFLAB_SCALE environment variable")
    return get_scale("small")


Row = tuple[Any, ...]


@dataclass
class TableRows:
    """Rows for one table, in column order, generated lazily in batches (lists of rows)."""

    table: str
    columns: tuple[str, ...]
    count: int
    batches: Callable[[], Iterator[list[Row]]]

    def rows(self) -> Iterator[Row]:
        """Return the rows one by one."""
        return itertools.chain.from_iterable(self.batches())


_ADJECTIVES = (
    "Classic", "Compact", "Deluxe", "Eco", "Ergonomic", "Handmade", "Heavy-duty", "Mini",
    "Modern", "Portable", "Premium", "Rustic", "Smart", "Vintage", "Wireless", "Zen",
)
_NOUNS = (
    "Backpack", "Blender", "Bottle", "Camera", "Chair", "Desk", "Headphones", "Kettle",
    "Lamp", "Mug", "Notebook", "Pan", "Pen", "Speaker", "Teapot", "Umbrella", "Watch",
)
_CATEGORY_WORDS = (
    "Audio", "Books", "Camping", "Coffee", "Garden", "Kitchen", "Lighting", "Music", "Office",
    "Outdoor", "Photography", "Sports", "Stationery", "Tea", "Tools", "Toys", "Travel", "Wellness",
)
_FIRST = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jun",
          "Kofi", "Lea", "Mateo", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sami", "Tomas")
_LAST = ("Alvarez", "Brown", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Haddad",
         "Ito", "Jensen", "Kim", "Lopez", "Meyer", "Novak", "Okafor", "Patel", "Rossi", "Silva")
_WORDS = (
    "works", "great", "sturdy", "broke", "after", "a", "week", "love", "it", "the", "color",
    "is", "nice", "would", "buy", "again", "too", "small", "for", "my", "kitchen", "fast",
    "shipping", "not", "worth", "price", "exactly", "as", "described", "quality", "poor",
)
_STATUSES = ("cart", "paid", "paid", "shipped", "shipped", "shipped", "cancelled")
# Ratings lean positive, as they do on real shops.
_RATING_WEIGHTS = (5, 7, 15, 33, 40)
# Prices are randrange(199, 49_999) cents, written as str(Decimal(cents) / 100): "12.5", "3".
_LOWEST_PRICE, _PRICE_STEPS = 199, 49_999 - 199
_BATCH = 20_000  # rows per batch for the tables generated row by row


# --- Turning drawn numbers into column values, a batch at a time --------------------------------


@functools.cache
def _price_texts() -> np.ndarray:
    import numpy as np

    texts = [str(Decimal(_LOWEST_PRICE + cents) / 100) for cents in range(_PRICE_STEPS)]
    return np.array(texts, dtype=object)


def _prices(drawn: np.ndarray) -> list[str]:
    return _price_texts()[drawn].tolist()  # type: ignore[no-any-return]


@functools.cache
def _clock(vendor: str) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    # Timestamps as the database stores them, so the bulk path converts nothing: Django's SQLite
    # backend keeps naive UTC text; PostgreSQL's COPY reads ISO text with a zone. A day's text
    # and a second's text, as byte rows, glued side by side for a whole batch.
    days = [f"{EPOCH + timedelta(days=d):%Y-%m-%d} " for d in range(SPAN_SECONDS // 86_400)]
    zone = "+00" if vendor == "postgresql" else ""
    seconds = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{zone}" for s in range(86_400)]

    def table(texts: list[str]) -> np.ndarray:
        return np.frombuffer("".join(texts).encode(), np.uint8).reshape(len(texts), -1)

    return table(days), table(seconds)


def _stamps(drawn: np.ndarray, vendor: str) -> list[Any]:
    import numpy as np

    if vendor == "python":  # for the ORM (bulk_create in the benchmark): aware datetimes
        return [EPOCH + timedelta(seconds=s) for s in drawn.tolist()]
    days, seconds = _clock(vendor)
    glued = np.concatenate((days[drawn // 86_400], seconds[drawn % 86_400]), axis=1)
    width, text = glued.shape[1], glued.tobytes().decode("ascii")
    return [text[i:i + width] for i in range(0, len(text), width)]


@functools.cache
def _word_texts() -> list[str]:
    # One byte per word: b"\x05" -> " a", b"\x45" (+64: a sentence's first) -> "A", 255 ends it.
    texts = ["\n"] * 256
    for i, word in enumerate(_WORDS):
        texts[i], texts[64 + i] = f" {word}", word.capitalize()
    return texts


def _sentences(drawn: tuple[np.ndarray, np.ndarray]) -> list[str]:
    """Return ``" ".join(choices(_WORDS, k=count)).capitalize()`` for each drawn sentence."""
    import numpy as np

    counts, floats = drawn
    words = (floats * float(len(_WORDS))).astype(np.uint8)  # choices(): floor(random() * n)
    codes = np.full(len(words) + len(counts), 255, np.uint8)
    codes[np.arange(len(words)) + np.repeat(np.arange(len(counts)), counts)] = words
    codes[np.cumsum(counts + 1) - (counts + 1)] += 64
    text = codecs.charmap_decode(codes.tobytes(), "strict", _word_texts())[0]
    return text.split("\n")[:-1]


def _ratings(drawn: np.ndarray) -> list[int]:
    import numpy as np

    # choices((1, 2, 3, 4, 5), _RATING_WEIGHTS): bisect the running totals at random() * total.
    totals = np.cumsum(_RATING_WEIGHTS)
    return (np.searchsorted(totals[:-1], drawn * float(totals[-1]), side="right") + 1).tolist()


def _batched(rows: Iterator[Row]) -> Iterator[list[Row]]:
    while batch := list(itertools.islice(rows, _BATCH)):
        yield batch


# --- The tables -----------------------------------------------------------------------------------


def generate(
    scale: Scale,
    *,
    seed: int = 42,
    admin_password: str | None = None,
    vendor: str = "sqlite",
) -> list[TableRows]:
    """Return every table's rows for ``scale``, parents before children.

    Ids are assigned here (1..n), so child rows can point at parents without a round trip and
    the same seed always gives the same rows. Values come out as ``vendor`` stores them.
    Each table has its own ``random.Random(f"{seed}-<table>")``; the comments give the calls
    each row makes on it, in order, which ``draw`` replays.
    """
    import numpy as np  # imported here: `import perflab` stays light for lessons

    from .draws import FLOAT, Below, Words, draw

    s = scale

    def categories() -> Iterator[list[Row]]:
        rows = []
        for i in range(1, s.categories + 1):
            word = _CATEGORY_WORDS[(i - 1) % len(_CATEGORY_WORDS)]
            suffix = "" if i <= len(_CATEGORY_WORDS) else f" {(i - 1) // len(_CATEGORY_WORDS) + 1}"
            name = f"{word}{suffix}"
            rows.append((i, name, name.lower().replace(" ", "-")))
        yield rows

    def tags() -> Iterator[list[Row]]:
        yield [(i, f"tag-{i:03d}") for i in range(1, s.tags + 1)]

    def products() -> Iterator[list[Row]]:
        # choice(_ADJECTIVES), choice(_NOUNS), randint(1, categories), a sentence of 8-30
        # words, randrange(199, 49_999) cents, randrange(0, 500) in stock, a timestamp.
        plan = (Below(len(_ADJECTIVES)), Below(len(_NOUNS)), Below(s.categories), Words(8, 30),
                Below(_PRICE_STEPS), Below(500), Below(SPAN_SECONDS))
        first = 1
        for batch in draw(f"{seed}-products", plan, s.products):
            adjective, noun, category, description, price, stock, created = batch.values
            ids = range(first, first := first + batch.rows)
            names = [f"{_ADJECTIVES[a]} {_NOUNS[n]} {i}"
                     for a, n, i in zip(adjective.tolist(), noun.tolist(), ids, strict=True)]
            yield list(zip(
                ids, (category + 1).tolist(), names,
                [name.lower().replace(" ", "-") for name in names], _sentences(description),
                _prices(price), stock.tolist(), _stamps(created, vendor), strict=True,
            ))

    def product_tags() -> Iterator[Row]:
        # Few rows, and sample() draws differently: plain calls.
        rng = random.Random(f"{seed}-product-tags")
        row_id = 0
        for product_id in range(1, s.products + 1):
            k = rng.randint(0, min(s.max_tags_per_product, s.tags))
            for tag_id in sorted(rng.sample(range(1, s.tags + 1), k)):
                row_id += 1
                yield (row_id, product_id, tag_id)

    def customers() -> Iterator[list[Row]]:
        # choice(_FIRST), choice(_LAST), a timestamp.
        plan = (Below(len(_FIRST)), Below(len(_LAST)), Below(SPAN_SECONDS))
        i = 0
        for batch in draw(f"{seed}-customers", plan, s.customers):
            first_names, last_names, created = batch.values
            rows = []
            for f, la, joined in zip(first_names.tolist(), last_names.tolist(),
                                     _stamps(created, vendor), strict=True):
                i += 1
                first, last = _FIRST[f], _LAST[la]
                username = f"{first.lower()}.{last.lower()}{i}"
                is_admin = i == 1 and admin_password is not None
                rows.append((
                    i,
                    admin_password if is_admin else "!",  # "!": unusable password, no hashing
                    None, is_admin, "admin" if is_admin else username, first, last,
                    f"{username}@example.com", is_admin, True, joined,
                ))
            yield rows

    def reviews() -> Iterator[list[Row]]:
        # randint(1, products), randint(1, customers), a weighted rating, a title of 2-6
        # words, a body of 10-40 words, a timestamp.
        plan = (Below(s.products), Below(s.customers), FLOAT, Words(2, 6), Words(10, 40),
                Below(SPAN_SECONDS))
        first = 1
        for batch in draw(f"{seed}-reviews", plan, s.reviews):
            product, author, rating, title, body, created = batch.values
            yield list(zip(
                range(first, first := first + batch.rows), (product + 1).tolist(),
                (author + 1).tolist(), _ratings(rating), _sentences(title), _sentences(body),
                _stamps(created, vendor), strict=True,
            ))

    # randint(1, max_lines_per_order) lines per order, drawn up front: the lines need them.
    line_counts = np.concatenate([np.zeros(0, np.int64)] + [
        batch.values[0] + 1
        for batch in draw(f"{seed}-orders", (Below(s.max_lines_per_order),), s.orders)
    ])

    def orders() -> Iterator[list[Row]]:
        # randint(1, customers), choice(_STATUSES), a timestamp.
        plan = (Below(s.customers), Below(len(_STATUSES)), Below(SPAN_SECONDS))
        statuses = np.array(_STATUSES, dtype=object)
        first = 1
        for batch in draw(f"{seed}-order-rows", plan, s.orders):
            customer, status, created = batch.values
            yield list(zip(
                range(first, first := first + batch.rows), (customer + 1).tolist(),
                statuses[status].tolist(), _stamps(created, vendor), strict=True,
            ))

    def order_lines() -> Iterator[list[Row]]:
        # randint(1, products), randint(1, 5), randrange(199, 49_999) cents.
        order_ids = np.repeat(np.arange(1, s.orders + 1), line_counts)
        first = 1
        for batch in draw(f"{seed}-order-lines", (Below(s.products), Below(5), Below(_PRICE_STEPS)),
                          len(order_ids)):
            product, quantity, price = batch.values
            ids = range(first, first := first + batch.rows)
            yield list(zip(
                ids, order_ids[ids.start - 1:ids.stop - 1].tolist(), (product + 1).tolist(),
                (quantity + 1).tolist(), _prices(price), strict=True,
            ))

    tag_rows = list(product_tags())
    return [
        TableRows("shop_category", ("id", "name", "slug"), s.categories, categories),
        TableRows("shop_tag", ("id", "name"), s.tags, tags),
        TableRows(
            "shop_product",
            ("id", "category_id", "name", "slug", "description", "price", "stock", "created"),
            s.products, products,
        ),
        TableRows("shop_product_tags", ("id", "product_id", "tag_id"), len(tag_rows),
                  lambda: _batched(iter(tag_rows))),
        TableRows(
            "auth_user",
            ("id", "password", "last_login", "is_superuser", "username", "first_name",
             "last_name", "email", "is_staff", "is_active", "date_joined"),
            s.customers, customers,
        ),
        TableRows(
            "shop_review",
            ("id", "product_id", "author_id", "rating", "title", "body", "created"),
            s.reviews, reviews,
        ),
        TableRows("shop_order", ("id", "customer_id", "status", "created"), s.orders, orders),
        TableRows(
            "shop_orderline", ("id", "order_id", "product_id", "quantity", "unit_price"),
            int(line_counts.sum()), order_lines,
        ),
    ]
