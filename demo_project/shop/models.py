"""The shop's domain: what the lessons query, written as a beginner would model it."""

from __future__ import annotations

from django.conf import settings
from django.db import models

__all__ = ["Category", "Order", "OrderLine", "Product", "Review", "Tag"]


class Category(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)

    class Meta:
        verbose_name_plural = "categories"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.PositiveIntegerField(default=0)
    created = models.DateTimeField()
    tags = models.ManyToManyField(Tag, blank=True, related_name="products")
    # Denormalized copies of what the reviews table says (lesson 14 keeps them in step).
    # The seed fills them; code that adds or removes a review must update them too.
    num_reviews = models.PositiveIntegerField(default=0, db_default=0)
    rating_sum = models.PositiveIntegerField(default=0, db_default=0)

    def __str__(self) -> str:
        return self.name

    @property
    def average_rating(self) -> float | None:
        """Return the mean rating from the stored counters, None before the first review."""
        return self.rating_sum / self.num_reviews if self.num_reviews else None

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("shop:product-detail", kwargs={"slug": self.slug})


class Review(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="reviews")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviews"
    )
    rating = models.PositiveSmallIntegerField()
    title = models.CharField(max_length=200)
    body = models.TextField()
    created = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.title} ({self.rating}/5)"


class Order(models.Model):
    class Status(models.TextChoices):
        CART = "cart", "Cart"
        PAID = "paid", "Paid"
        SHIPPED = "shipped", "Shipped"
        CANCELLED = "cancelled", "Cancelled"

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="orders"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CART)
    created = models.DateTimeField()
    # When the confirmation mail went out: the task that sends it claims the order here first,
    # so a task that runs twice (a retry, a redelivery) sends one mail (lesson 09).
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Order #{self.pk}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_lines")
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_id}"
