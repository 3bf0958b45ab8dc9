"""Serve the top-rated products with FastAPI (lesson 18): its own ASGI app, no Django views.

It reads the same database as the shop through SQLAlchemy Core (``shop.other_orms``), found
from Django's settings: ``lab.serve("shop.fastapi_app:app", ...)`` starts it with the lab's
database in those settings, as it does the shop. No Django middleware, no URL resolver, no
Django request or response: FastAPI's routing, pydantic's validation and Starlette's JSON.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from shop.other_orms import TopProduct, sqlalchemy_engine, top_products_core

__all__ = ["TopProductModel", "app", "engine"]

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


class TopProductModel(BaseModel):
    """Describe one row of the answer, as pydantic validates it."""

    id: int
    name: str
    average_rating: float
    reviews: int


@cache
def engine() -> Any:
    """Return this process's SQLAlchemy engine, made on first use (it holds a pool)."""
    return sqlalchemy_engine()


@app.get("/categories/{category_id}/top-products/", response_model=list[TopProductModel])
def top_products(category_id: int) -> list[TopProduct]:
    """Answer the top products; a plain ``def``: FastAPI runs it in a thread, off the loop."""
    return top_products_core(engine(), category_id)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """Answer that the process is up (what the server's start waits for)."""
    return {"status": "ok"}
