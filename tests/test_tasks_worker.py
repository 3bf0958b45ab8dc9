"""Slow work off the request: a real Celery worker on the learner's Redis, a real SMTP server."""

from __future__ import annotations

import signal
import smtplib
import sys
import time
from typing import Any

import psutil
import pytest
from django.test import override_settings

from perflab import services
from perflab.errors import PerflabError, UnknownChoice
from perflab.tasks_worker import CeleryWorker

pytestmark = pytest.mark.services

needs_redis = pytest.mark.skipif(
    not services.service_available("redis") and not services.is_strict(),
    reason="redis-server is not installed",
)


def _wait_for(condition: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def smtp(lab: Any) -> Any:
    server = lab.smtp_server(delay_ms=100)
    yield server
    server.stop()


def test_the_smtp_server_takes_its_time_and_keeps_the_message(lab: Any, smtp: Any) -> None:
    from django.core.mail import send_mail

    before = smtp.count()
    with override_settings(**smtp.settings):
        started = time.perf_counter()
        sent = send_mail("Hello", "Body text", "shop@example.com", ["a@example.com"])
        elapsed = time.perf_counter() - started
    assert sent == 1 and elapsed >= 0.1
    assert smtp.count() == before + 1
    assert smtp.messages()[-1]["Subject"] == "Hello"


def test_the_smtp_server_refuses_mail_without_its_password(smtp: Any) -> None:
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPResponseException) as info:
            client.sendmail("x@example.com", ["y@example.com"], "Subject: hi\n\nbody")
        assert info.value.smtp_code == 530  # authentication required
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("shop", "guess")
    assert smtp.password not in " ".join(psutil.Process(smtp.pid).cmdline())


@needs_redis
def test_a_queued_task_runs_in_the_worker_and_sends_the_mail(
    lab: Any, smtp: Any, gone: Any
) -> None:
    from shop.mail import send_order_confirmation_task
    from shop.models import Order

    worker = lab.celery_worker(settings=smtp.settings)
    try:
        order_id = Order.objects.order_by("id").values_list("id", flat=True).first()
        before = smtp.count()
        started = time.perf_counter()
        send_order_confirmation_task.delay(order_id)
        queued_s = time.perf_counter() - started
        assert queued_s < 0.1 * 5  # queueing doesn't wait for the 100 ms the mail takes
        assert _wait_for(lambda: smtp.count() == before + 1)
        assert smtp.messages()[-1]["Subject"] == f"Your order #{order_id}"
        pids = [worker.pid, *(c.pid for c in psutil.Process(worker.pid).children())]
    finally:
        worker.stop()
        lab.tasks_in_place()  # the other tests' kernel runs tasks in place again
    assert gone(pids)


def test_a_relay_that_is_down_refuses_then_comes_back_on_its_port(lab: Any) -> None:
    from django.core.mail import send_mail

    relay = lab.smtp_server()
    try:
        with override_settings(**relay.settings):
            send_mail("One", "Body", "shop@example.com", ["a@example.com"])
            port = relay.port
            with relay.down(), pytest.raises(ConnectionRefusedError):
                send_mail("Two", "Body", "shop@example.com", ["a@example.com"])
            send_mail("Three", "Body", "shop@example.com", ["a@example.com"])
        assert relay.port == port and relay.count() == 2 and relay.started() == 2
        assert [m["Subject"] for m in relay.messages()] == ["One", "Three"]
    finally:
        relay.stop()


ACKS_LATE = {
    "CELERY_TASK_ACKS_LATE": True,
    "CELERY_BROKER_TRANSPORT_OPTIONS": {
        "visibility_timeout": 2, "unacked_restore_interval": 1, "unacked_restore_throttle": 1,
    },
}


@needs_redis
def test_a_task_on_a_killed_worker_comes_back_with_late_acks(lab: Any, gone: Any) -> None:
    from shop.mail import send_order_confirmation_task
    from shop.models import Order

    relay = lab.smtp_server(delay_ms=1500)
    worker = lab.celery_worker(settings={**relay.settings, **ACKS_LATE})
    try:
        order_id = Order.objects.order_by("id").values_list("id", flat=True).first()
        Order.objects.filter(pk=order_id).update(confirmation_sent_at=None)
        result = send_order_confirmation_task.delay(order_id)
        assert _wait_for(lambda: relay.started() == 1)  # mid-task
        pids = [worker.pid, *worker.pool_pids()]
        worker.kill()
        assert gone(pids) and not worker.running and worker.queued() == 0
        worker.start()  # a new worker gets the message once its visibility timeout is up
        assert result.get(timeout=20) == 1
        assert relay.count() == 1 and relay.started() == 2
    finally:
        worker.stop()
        relay.stop()
        lab.tasks_in_place()


@needs_redis
def test_the_queue_length_counts_tasks_no_worker_has_taken(lab: Any) -> None:
    from config.celery import app
    from shop.mail import send_order_confirmation_task

    worker = lab.celery_worker(concurrency=1)
    try:
        worker.stop()
        app.control.purge()
        for order_id in (1, 2, 3):
            send_order_confirmation_task.delay(order_id)
        assert worker.queued() == 3
        assert app.control.purge() == 3 and worker.queued() == 0
    finally:
        lab.tasks_in_place()


CHILD = """
import sys
from perflab import setup
lab = setup(scale="tiny", quiet=True)
worker = lab.celery_worker(concurrency=2)
import psutil
print(worker.pid, *(c.pid for c in psutil.Process(worker.pid).children()), flush=True)
sys.stdin.read()
"""


@needs_redis
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="setpriv is Linux-only")
def test_a_killed_kernel_leaves_no_worker_and_no_broker(kernel_child: Any, gone: Any) -> None:
    child, pids = kernel_child(CHILD)
    redis = [r["pid"] for r in services.running_services() if r["name"] == "redis"
             and r["owner_pid"] == child.pid]
    assert len(pids) == 3 and len(redis) == 1

    child.send_signal(signal.SIGKILL)
    child.wait()

    assert gone(pids + redis), f"the worker, its children or Redis outlived the kernel: {pids}"


def test_the_broker_must_be_the_learners_socket() -> None:
    with pytest.raises(PerflabError, match="a broker on TCP would take tasks from any local"):
        CeleryWorker("redis://127.0.0.1:6379/0")
    with pytest.raises(UnknownChoice, match="'prefork', 'threads', 'solo'"):
        CeleryWorker("redis+socket:///x.sock", pool="gevent")
    with pytest.raises(PerflabError, match="Only a prefork pool"):
        CeleryWorker("redis+socket:///x.sock", pool="threads").kill(pool_only=True)
