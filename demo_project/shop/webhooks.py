"""The payment provider's webhook: "order N is paid". The shop marks it paid and mails the customer.

Two versions of the same endpoint. ``order_paid`` sends the confirmation mail during the
request, so the provider waits for the mail server; ``order_paid_queued`` queues it for a Celery
worker once the order is saved, and answers at once. Both are idempotent: providers deliver a
webhook again when they get no timely answer, and a second call for a paid order changes
nothing. The provider signs each call (``shop.signatures``); an unsigned call is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, wraps
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from shop import signatures
from shop.mail import send_order_confirmation, send_order_confirmation_task
from shop.models import Order

__all__ = ["order_paid", "order_paid_queued"]


def signed_by_the_provider(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Refuse a call whose signature does not match the shared secret (403)."""

    @csrf_exempt  # a server calls it, not a browser: the signature is what authenticates it
    @require_POST
    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        signature = request.headers.get(signatures.HEADER, "")
        if not signatures.verify(settings.PAYMENT_WEBHOOK_SECRET, request.path, signature):
            return HttpResponse("bad signature", status=403, content_type="text/plain")
        return view(request, *args, **kwargs)

    return checked


def _mark_paid(order_id: int) -> bool:
    """Move the order from cart to paid; return False when it was not in the cart (a repeat)."""
    return bool(
        Order.objects.filter(pk=order_id, status=Order.Status.CART).update(status=Order.Status.PAID)
    )


@signed_by_the_provider
def order_paid(request: HttpRequest, order_id: int) -> HttpResponse:
    """Mark the order paid and mail the confirmation now: the provider waits for the mail."""
    if _mark_paid(order_id):
        send_order_confirmation(order_id)
    return HttpResponse("ok", content_type="text/plain")


@signed_by_the_provider
def order_paid_queued(request: HttpRequest, order_id: int) -> HttpResponse:
    """Mark the order paid and queue the confirmation for a worker, once the change is saved."""
    with transaction.atomic():
        if _mark_paid(order_id):
            transaction.on_commit(partial(send_order_confirmation_task.delay, order_id))
    return HttpResponse("ok", content_type="text/plain")
