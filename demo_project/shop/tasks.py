"""Celery finds the shop's tasks here (``app.autodiscover_tasks``)."""

from __future__ import annotations

from shop.mail import send_order_confirmation_task

__all__ = ["send_order_confirmation_task"]
