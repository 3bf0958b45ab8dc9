"""Turn reviews into JSON for the API, following each foreign key as a beginner would."""

from __future__ import annotations

from rest_framework import serializers

from shop.models import Review

__all__ = ["ReviewSerializer"]


class ReviewSerializer(serializers.ModelSerializer):
    """Serialize a review with its author's username and its product's name.

    Each ``source="author.username"`` / ``source="product.name"`` loads the related row on
    its own: two extra queries per review unless the queryset joins them.
    """

    author = serializers.CharField(source="author.username", read_only=True)
    product_name = serializers.CharField(source="product.name", read_only=True)

    class Meta:
        model = Review
        fields = ["id", "product", "product_name", "author", "rating", "title", "body", "created"]
        read_only_fields = fields
