"""Mail the shop sends: the order confirmation, as a plain function and as a Celery task.

``send_order_confirmation(order_id)`` talks to the SMTP server while its caller waits;
``send_order_confirmation_task.delay(order_id)`` queues the same work for a Celery worker. The
task takes the order's id, not the order: a worker loads the row as it is when the task runs.
"""

from __future__ import annotations

from django.core.mail import send_mail

from config.celery import app
from shop.models import Order

__all__ = ["send_order_confirmation", "send_order_confirmation_task"]


def send_order_confirmation(order_id: int) -> int:
    """Mail the customer a summary of the order; return how many messages went out (1)."""
    order = Order.objects.select_related("customer").get(pk=order_id)
    lines = order.lines.select_related("product").order_by("id")
    body = "\n".join(f"{line.quantity} x {line.product.name}" for line in lines)
    return send_mail(
        subject=f"Your order #{order.pk}",
        message=f"Thank you for your order.\n\n{body}\n",
        from_email=None,
        recipient_list=[order.customer.email or f"{order.customer.username}@example.com"],
    )


@app.task(name="shop.send_order_confirmation")
def send_order_confirmation_task(order_id: int) -> int:
    """Queue send_order_confirmation for a Celery worker."""
    return send_order_confirmation(order_id)
