"""The payment webhook: signed calls only, idempotent, and the mail sent now or queued on commit."""

from __future__ import annotations

from typing import Any

import django
import pytest
from django.core import mail as outbox
from django.test import override_settings

from shop import signatures

SECRET = "test-secret"
_LOCMEM_MAIL = "django.core.mail.backends.locmem.EmailBackend"
# Django 6.1 configures mail in MAILERS and deprecates EMAIL_BACKEND, which 5.2 reads.
LOCMEM = {
    **({"MAILERS": {"default": {"BACKEND": _LOCMEM_MAIL}}} if django.VERSION >= (6, 1)
       else {"EMAIL_BACKEND": _LOCMEM_MAIL}),
    "PAYMENT_WEBHOOK_SECRET": SECRET,
}


@pytest.fixture
def order_in_cart(lab: Any) -> int:
    from shop.models import Order

    order_id = Order.objects.order_by("id").values_list("id", flat=True).first()
    Order.objects.filter(pk=order_id).update(status=Order.Status.CART, confirmation_sent_at=None)
    outbox.outbox = []
    return order_id


def _call(lab: Any, path: str, secret: str = SECRET) -> Any:
    return lab.post(path, headers={signatures.HEADER: signatures.sign(secret, path)})


def test_a_signature_holds_for_its_path_and_secret_only() -> None:
    signature = signatures.sign("s", "/webhooks/paid/1/")
    assert signatures.verify("s", "/webhooks/paid/1/", signature)
    assert not signatures.verify("s", "/webhooks/paid/2/", signature)
    assert not signatures.verify("t", "/webhooks/paid/1/", signature)
    assert not signatures.verify("", "/webhooks/paid/1/", signatures.sign("", "/webhooks/paid/1/"))


def test_a_call_without_the_right_signature_changes_nothing(lab: Any, order_in_cart: int) -> None:
    from shop.models import Order

    path = f"/webhooks/paid/{order_in_cart}/"
    with override_settings(**LOCMEM):
        assert _call(lab, path, secret="guess").status_code == 403
        assert lab.post(path).status_code == 403
        assert lab.get(path).status_code == 405
    with override_settings(**{**LOCMEM, "PAYMENT_WEBHOOK_SECRET": ""}):
        assert _call(lab, path, secret="").status_code == 403  # no secret set: refuse all
    assert Order.objects.get(pk=order_in_cart).status == Order.Status.CART
    assert outbox.outbox == []


@pytest.mark.parametrize("suffix", ["", "queued/"])
def test_the_webhook_pays_the_order_and_mails_once_however_often_it_is_called(
    lab: Any, order_in_cart: int, suffix: str
) -> None:
    from shop.models import Order

    path = f"/webhooks/paid/{order_in_cart}/{suffix}"
    with override_settings(**LOCMEM):  # no broker: the queued task runs in place, on commit
        assert _call(lab, path).status_code == 200
        assert _call(lab, path).status_code == 200
    order = Order.objects.get(pk=order_in_cart)
    assert order.status == Order.Status.PAID
    assert [m.subject for m in outbox.outbox] == [f"Your order #{order_in_cart}"]
    assert (order.confirmation_sent_at is not None) == (suffix == "queued/")


def test_the_task_sends_no_second_mail(lab: Any, order_in_cart: int) -> None:
    from shop.mail import send_order_confirmation_task

    with override_settings(**LOCMEM):
        assert send_order_confirmation_task.delay(order_in_cart).get() == 1
        assert send_order_confirmation_task.delay(order_in_cart).get() == 0
    assert len(outbox.outbox) == 1


def test_the_queued_webhook_queues_nothing_when_its_transaction_rolls_back(
    lab: Any, order_in_cart: int
) -> None:
    from django.db import transaction

    from shop.models import Order

    with override_settings(**LOCMEM), transaction.atomic():  # as ATOMIC_REQUESTS would
        assert _call(lab, f"/webhooks/paid/{order_in_cart}/queued/").status_code == 200
        transaction.set_rollback(True)  # the rest of the request failed
    assert Order.objects.get(pk=order_in_cart).status == Order.Status.CART
    assert outbox.outbox == []


def test_the_task_retries_what_a_mail_server_outage_raises() -> None:
    from shop.mail import send_order_confirmation_task as task

    assert issubclass(ConnectionRefusedError, task.autoretry_for)
    assert task.max_retries and task.retry_backoff and not task.retry_jitter
