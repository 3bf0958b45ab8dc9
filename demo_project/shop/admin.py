"""Register the shop's models in the admin, kept simple on purpose."""

from __future__ import annotations

from django.contrib import admin

from shop.models import Category, Order, OrderLine, Product, Review, Tag


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    search_fields = ["name"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "category", "price", "stock", "created"]
    list_filter = ["category"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["tags"]
    date_hierarchy = "created"


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["title", "product", "author", "rating", "created"]
    list_filter = ["rating"]
    search_fields = ["title"]
    # Select widgets would load every product and user into the form; seeded scales are big.
    raw_id_fields = ["product", "author"]


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    raw_id_fields = ["product"]
    extra = 0


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["__str__", "customer", "status", "created"]
    list_filter = ["status"]
    raw_id_fields = ["customer"]
    inlines = [OrderLineInline]
