"""Mail the shop sends: the order confirmation, as a plain function and as a Celery task.

``send_order_confirmation(order_id)`` talks to the SMTP server while its caller waits;
``send_order_confirmation_task.delay(order_id)`` queues the same work for a Celery worker. The
task takes the order's id, not the order: a worker loads the row as it is when the task runs.
It retries with a growing delay while the mail server is unreachable, and it is idempotent: it
notes when the mail went out (``confirmation_sent_at``), so running it again sends no second mail.
"""

from __future__ import annotations

from django.core.mail import send_mail
from django.utils import timezone

from config.celery import app
from shop.models import Order

__all__ = ["send_order_confirmation", "send_order_confirmation_task"]


def send_order_confirmation(order_id: int) -> int:
    """Mail the customer a summary of the order; return how many messages went out (1)."""
    return _mail_confirmation(Order.objects.select_related("customer").get(pk=order_id))


def _mail_confirmation(order: Order) -> int:
    lines = order.lines.select_related("product").order_by("id")
    body = "\n".join(f"{line.quantity} x {line.product.name}" for line in lines)
    return send_mail(
        subject=f"Your order #{order.pk}",
        message=f"Thank you for your order.\n\n{body}\n",
        from_email=None,
        recipient_list=[order.customer.email or f"{order.customer.username}@example.com"],
    )


@app.task(
    name="shop.send_order_confirmation",
    # A refused connection, a timeout and smtplib's errors are all OSErrors: try again later,
    # after 1, 2, 4, 8, 16 seconds, then give up.
    autoretry_for=(OSError,),
    retry_backoff=1,
    retry_jitter=False,
    max_retries=5,
)
def send_order_confirmation_task(order_id: int) -> int:
    """Send the order's confirmation unless it went out already; return the messages sent."""
    # Fails loudly if the order is not there (not saved yet?).
    order = Order.objects.select_related("customer").get(pk=order_id)
    if order.confirmation_sent_at is not None:
        return 0  # a repeat of this task: the mail went out already
    sent = _mail_confirmation(order)
    # Noted once the relay took it: a task killed before this line sends again when redelivered
    # (a duplicate mail), rather than never (a lost one).
    Order.objects.filter(pk=order_id).update(confirmation_sent_at=timezone.now())
    return sent
