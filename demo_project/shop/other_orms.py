"""Ask one question five ways: a category's top products by average rating, with review counts.

Lesson 18 runs the same query through Django's ORM, raw SQL with parameters, SQLAlchemy 2.x
(Core and ORM) and PonyORM, on the lab's own database, and checks that every way returns the
same rows. Each way returns a list of ``TopProduct`` dicts (id, name, average rating rounded to
two places, review count), so their timings compare like with like: the query, the rows coming
back, and the Python objects each library builds from them.

SQLAlchemy and Pony map the shop's existing tables (no ``create_all``, no
``create_tables``): Django's migrations own the schema. ``sqlalchemy_engine`` and
``pony_database`` connect to the database Django uses, found from its settings. The module
imports no Django model at import time: ``shop.fastapi_app`` uses it without setting Django up.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connection
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shop.top_products import (
    MIN_REVIEWS,
    TOP,
    TopProduct,
    atop_products_django,
    top_products_django,
    top_products_queryset,
)
from shop.top_products import top_product_row as _row

__all__ = [
    "MIN_REVIEWS",
    "TOP",
    "SAProduct",
    "SAReview",
    "TopProduct",
    "atop_products_django",
    "core_tables",
    "pony_database",
    "search_products_formatted",
    "search_products_with_params",
    "sqlalchemy_engine",
    "top_products_core",
    "top_products_django",
    "top_products_pony",
    "top_products_queryset",
    "top_products_raw",
    "top_products_sqlalchemy_orm",
]

TOP_PRODUCTS_SQL = """
    SELECT p.id, p.name, AVG(r.rating) AS average, COUNT(r.id) AS review_count
    FROM shop_product p JOIN shop_review r ON r.product_id = p.id
    WHERE p.category_id = %s
    GROUP BY p.id, p.name
    HAVING COUNT(r.id) >= %s
    ORDER BY average DESC, review_count DESC, p.id
    LIMIT %s
"""


def top_products_raw(category_id: int, min_reviews: int = MIN_REVIEWS,
                     top: int = TOP) -> list[TopProduct]:
    """Return the top products with hand-written SQL; the values travel as parameters."""
    with connection.cursor() as cursor:
        cursor.execute(TOP_PRODUCTS_SQL, [category_id, min_reviews, top])
        return [_row(*row) for row in cursor.fetchall()]


# --- SQL injection ----------------------------------------------------------------------------
def search_products_formatted(term: str) -> list[tuple[Any, ...]]:
    """Search product names by pasting ``term`` into the SQL: an injection, kept to be shown."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, name, description FROM shop_product WHERE name LIKE '%{term}%'"
        )
        return cursor.fetchall()


def search_products_with_params(term: str) -> list[tuple[Any, ...]]:
    """Search product names with ``term`` as a parameter: the database never parses it as SQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, name, description FROM shop_product WHERE name LIKE %s",
            [f"%{term}%"],
        )
        return cursor.fetchall()


# --- SQLAlchemy 2.x -------------------------------------------------------------------------
def sqlalchemy_url() -> str:
    """Return a SQLAlchemy URL for the database Django's default connection uses."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    options = settings.get("OPTIONS", {})
    host = settings.get("HOST") or options.get("host", "")
    port = settings.get("PORT") or options.get("port", "")
    return (f"postgresql+psycopg://{settings['USER']}@/{settings['NAME']}"
            f"?host={host}&port={port}")


def sqlalchemy_engine() -> Any:
    """Return a SQLAlchemy engine on Django's database (one per process: it holds a pool)."""
    from sqlalchemy import create_engine

    return create_engine(sqlalchemy_url())


@cache
def core_tables() -> Any:
    """Return the shop's two tables as SQLAlchemy Core ``Table`` objects (no reflection).

    Made once per process: SQLAlchemy caches each statement's compiled SQL under a key that
    includes its tables, so new ``Table`` objects on every call would compile every time.
    """
    from sqlalchemy import Column, Integer, MetaData, Table

    metadata = MetaData()
    product = Table("shop_product", metadata, Column("id", Integer, primary_key=True),
                    Column("name", String(200)), Column("category_id", Integer))
    review = Table("shop_review", metadata, Column("id", Integer, primary_key=True),
                   Column("product_id", ForeignKey("shop_product.id")),
                   Column("rating", Integer))
    return product, review


def top_products_statement(category_id: int, min_reviews: int = MIN_REVIEWS,
                           top: int = TOP) -> Any:
    """Return the SQLAlchemy Core ``select()``: the same query, built from Python objects."""
    from sqlalchemy import func, select

    product, review = core_tables()
    average = func.avg(review.c.rating).label("average")
    count = func.count(review.c.id).label("review_count")
    return (
        select(product.c.id, product.c.name, average, count)
        .join(review, review.c.product_id == product.c.id)
        .where(product.c.category_id == category_id)
        .group_by(product.c.id, product.c.name)
        .having(count >= min_reviews)
        .order_by(average.desc(), count.desc(), product.c.id)
        .limit(top)
    )


def top_products_core(engine: Any, category_id: int, min_reviews: int = MIN_REVIEWS,
                      top: int = TOP) -> list[TopProduct]:
    """Return the top products with SQLAlchemy Core: a statement, rows as tuples."""
    with engine.connect() as conn:
        rows = conn.execute(top_products_statement(category_id, min_reviews, top))
        return [_row(*row) for row in rows]


class Base(DeclarativeBase):
    """The SQLAlchemy ORM's registry of the classes below (the lesson's only mapping)."""


class SAProduct(Base):
    """The shop's product table, as SQLAlchemy's ORM sees it: the columns the query needs."""

    __tablename__ = "shop_product"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category_id: Mapped[int]
    reviews: Mapped[list[SAReview]] = relationship(back_populates="product")


class SAReview(Base):
    """The shop's review table, mapped onto its existing columns."""

    __tablename__ = "shop_review"
    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("shop_product.id"))
    rating: Mapped[int]
    product: Mapped[SAProduct] = relationship(back_populates="reviews")


def top_products_orm_statement(category_id: int, min_reviews: int = MIN_REVIEWS,
                               top: int = TOP) -> Any:
    """Return the SQLAlchemy ORM statement: ``Product`` entities with two aggregates."""
    from sqlalchemy import func, select

    average = func.avg(SAReview.rating).label("average")
    count = func.count(SAReview.id).label("review_count")
    return (
        select(SAProduct, average, count)
        .join(SAProduct.reviews)
        .where(SAProduct.category_id == category_id)
        .group_by(SAProduct.id)
        .having(count >= min_reviews)
        .order_by(average.desc(), count.desc(), SAProduct.id)
        .limit(top)
    )


def top_products_sqlalchemy_orm(engine: Any, category_id: int, min_reviews: int = MIN_REVIEWS,
                                top: int = TOP) -> list[TopProduct]:
    """Return the top products with SQLAlchemy's ORM: a session, mapped ``Product`` objects."""
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        rows = session.execute(top_products_orm_statement(category_id, min_reviews, top))
        return [_row(p.id, p.name, average, count) for p, average, count in rows]


# --- PonyORM --------------------------------------------------------------------------------
def pony_database() -> Any:
    """Return a Pony ``Database`` bound to Django's database, its entities on the shop's tables.

    Pony binds a database once, so each call makes a new one with its own entity classes.
    """
    from pony import orm

    db = orm.Database()

    class Product(db.Entity):  # type: ignore[name-defined]
        _table_ = "shop_product"
        id = orm.PrimaryKey(int, auto=True)
        name = orm.Required(str)
        category_id = orm.Required(int)
        reviews = orm.Set("Review")

    class Review(db.Entity):  # type: ignore[name-defined]
        _table_ = "shop_review"
        id = orm.PrimaryKey(int, auto=True)
        product = orm.Required(Product, column="product_id")
        rating = orm.Required(int)

    if connection.vendor == "sqlite":
        db.bind(provider="sqlite", filename=str(connection.settings_dict["NAME"]))
    else:
        settings = connection.settings_dict
        options = settings.get("OPTIONS", {})
        db.bind(provider="postgres", user=settings["USER"], database=settings["NAME"],
                host=settings.get("HOST") or options.get("host"),
                port=settings.get("PORT") or options.get("port"))
    db.generate_mapping(create_tables=False)
    return db


def top_products_pony_query(db: Any, category_id: int, min_reviews: int = MIN_REVIEWS,
                            top: int = TOP) -> Any:
    """Return Pony's query: a generator expression that Pony translates to SQL."""
    from pony.orm import avg, count, desc, select

    Product = db.Product
    return select(
        (p, avg(p.reviews.rating), count(p.reviews)) for p in Product
        if p.category_id == category_id and count(p.reviews) >= min_reviews
    ).order_by(lambda p, a, c: (desc(a), desc(c), p.id)).limit(top)


def top_products_pony(db: Any, category_id: int, min_reviews: int = MIN_REVIEWS,
                      top: int = TOP) -> list[TopProduct]:
    """Return the top products with PonyORM, inside the ``db_session`` Pony requires."""
    from pony.orm import db_session

    with db_session:
        return [_row(p.id, p.name, average, count)
                for p, average, count in top_products_pony_query(db, category_id, min_reviews,
                                                                 top)]
