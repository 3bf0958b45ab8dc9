"""What django-haystack sends a search engine for each product (lesson 10).

haystack finds this module in every installed app. ``text`` is the document the engine
searches (``SearchQuerySet().auto_query("...")`` looks in it); ``name`` is stored beside it, so
a results page can show names without a query to the database.
"""

from __future__ import annotations

from haystack import indexes

from shop.models import Product


class ProductIndex(indexes.SearchIndex, indexes.Indexable):
    text = indexes.CharField(document=True)
    name = indexes.CharField(model_attr="name")

    def get_model(self) -> type[Product]:
        return Product

    def prepare_text(self, product: Product) -> str:
        """Return the words a search should find the product by: its name, then its description.

        haystack's documentation renders a template here; a method does the same job without a
        template render per product, which is most of the indexing time for short documents.
        """
        return f"{product.name}\n{product.description}"
