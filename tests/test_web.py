"""Serving under load: gunicorn and uvicorn workers, a slow upstream, Locust, capacity."""

from __future__ import annotations

import signal
import socket
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from perflab import capacity as capacity_module
from perflab.errors import PerflabError, PortInUse, UnknownChoice
from perflab.load import QUICK_DURATION_S, LoadResult, run_load
from perflab.web import WebServer

pytestmark = pytest.mark.services


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


@pytest.fixture(scope="module")
def shop(lab: Any) -> Any:
    server = lab.serve(workers=2)
    yield server
    server.stop()


def test_the_shop_is_served_by_real_workers_on_the_labs_own_database(lab: Any, shop: Any) -> None:
    status, body = _get(shop.url + "/api/reviews/?limit=5")
    assert status == 200 and body.count(b'"title"') == 5
    assert len(shop.worker_pids()) == 2
    # Each worker imported Django and the shop itself: tens of MB of its own.
    assert [size > 10 * 2**20 for size in shop.worker_memory()] == [True, True]
    assert shop.url.startswith("http://127.0.0.1:")
    # Several workers on one SQLite file: WAL mode, so readers and a writer don't lock out.
    with sqlite3.connect(lab.database_settings["NAME"]) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_served_shop_shows_no_debug_pages_to_other_users(shop: Any) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        _get(shop.url + "/no-such-page/")
    assert info.value.code == 404 and b"Traceback" not in info.value.read()


@pytest.mark.parametrize(("worker_class", "threads"), [("gthread", 4), ("uvicorn", 1)])
def test_gthread_and_uvicorn_workers_serve_the_shop(
    lab: Any, worker_class: str, threads: int
) -> None:
    server = lab.serve(worker_class=worker_class, threads=threads)
    try:
        assert _get(server.url + "/healthz")[0] == 200
        assert _get(server.url + "/")[0] == 200
    finally:
        server.stop()
    assert not server.running


def test_a_stopped_server_leaves_no_worker(lab: Any, gone: Any) -> None:
    server = lab.serve(workers=2)
    pids = [server.pid, *server.worker_pids()]
    server.stop()
    assert gone(pids)


CHILD = """
import sys
from perflab import setup
lab = setup(scale="tiny", quiet=True)
server = lab.serve(workers=2)
print(server.pid, *server.worker_pids(), flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="setpriv is Linux-only")
def test_a_killed_kernel_leaves_no_server_and_no_worker(kernel_child: Any, gone: Any) -> None:
    child, pids = kernel_child(CHILD)
    assert len(pids) == 3

    child.send_signal(signal.SIGKILL)
    child.wait()

    assert gone(pids), f"gunicorn or its workers outlived the SIGKILLed kernel: {pids}"


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=f"Port {port} on 127.0.0.1 is already in use"):
            WebServer(port=port)


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(UnknownChoice, match="'sync', 'gthread', 'uvicorn'"):
        WebServer(worker_class="eventlet")
    with pytest.raises(PerflabError, match="module:name"):
        WebServer("config.wsgi")
    with pytest.raises(PerflabError, match="1 or more"):
        WebServer(workers=0)


def test_the_slow_upstream_answers_after_its_delay(lab: Any) -> None:
    upstream = lab.slow_upstream(delay_ms=150)
    try:
        started = time.perf_counter()
        status, body = _get(upstream.url + "/api/rates")
        elapsed_ms = (time.perf_counter() - started) * 1000
        with pytest.raises(urllib.error.HTTPError, match="404"):
            _get(upstream.url + "/admin/")
    finally:
        upstream.stop()
    assert status == 200 and b'"delay_ms": 150' in body
    assert 150 <= elapsed_ms < 1500


def test_a_load_test_measures_throughput_and_latency(shop: Any) -> None:
    result = run_load(shop, ["/healthz", "/api/reviews/?limit=5"], users=4, duration_s=3)
    assert isinstance(result, LoadResult)
    assert result.requests > 20 and result.failures == 0 and result.rps > 0
    assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms
    assert 0 < result.generator_cpu < 1.5
    assert result.server_cpu is not None and 0 < result.server_cpu < 2.5
    assert result.rps_per_core is not None and result.rps_per_core > result.rps / 2.5
    assert result.summary().startswith("2 sync workers: ")
    assert run_load(shop.url, ["/healthz"], users=1, duration_s=1).server_cpu is None


def test_a_load_test_notes_which_worker_holds_each_connection(lab: Any, shop: Any) -> None:
    sync = run_load(shop, ["/healthz"], users=6, duration_s=2)
    # A sync worker closes each connection after its answer: it holds one at most.
    assert sync.worker_connections is not None and len(sync.worker_connections) == 2
    assert max(sync.worker_connections) <= 1
    server = lab.serve(workers=2, worker_class="gthread", threads=2)
    try:
        kept = run_load(server, ["/healthz"], users=6, duration_s=2)
    finally:
        server.stop()
    assert kept.worker_connections is not None and sum(kept.worker_connections) == 6


def test_a_load_test_stops_after_its_request_count(shop: Any) -> None:
    result = run_load(shop.url, ["/healthz"], users=2, duration_s=30, requests=50)
    assert 50 <= result.requests <= 60  # users may have a request in flight when it stops
    assert result.duration_s < 20


def test_a_quick_run_shortens_the_load_test(shop: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERFLAB_QUICK", "1")
    result = run_load(shop.url, ["/healthz"], users=2, duration_s=60)
    assert result.duration_s < QUICK_DURATION_S + 3


def test_a_webhook_load_signs_each_call_and_uses_each_id_once(lab: Any) -> None:
    from shop.models import Order

    ids = list(Order.objects.order_by("id").values_list("id", flat=True)[:40])
    Order.objects.filter(pk__in=ids).update(status=Order.Status.CART)
    relay = lab.smtp_server()
    server = lab.serve(settings={**relay.settings, "PAYMENT_WEBHOOK_SECRET": "s3cret"})
    try:
        result = run_load(server, ["/webhooks/paid/{id}/"], users=2, duration_s=30,
                          method="POST", ids=ids, secret="s3cret", warmup_s=0)
        unsigned = run_load(server, ["/webhooks/paid/{id}/"], users=1, duration_s=1,
                            method="POST", ids=ids, warmup_s=0)
        mails = relay.count()
    finally:
        server.stop()
        relay.stop()
    # Each id once: the run ended when they ran out, long before its 30 s; every order paid.
    assert mails == len(ids) and result.failures == 0
    assert result.requests <= len(ids) and result.duration_s < 20
    assert not Order.objects.filter(pk__in=ids, status=Order.Status.CART).exists()
    assert unsigned.failures == unsigned.requests  # 403 without the signature


def test_ids_go_with_a_path_that_has_a_place_for_them(shop: Any) -> None:
    with pytest.raises(PerflabError, match="Give ids for a path with"):
        run_load(shop, ["/webhooks/paid/{id}/"], users=1, duration_s=1)
    with pytest.raises(PerflabError, match="Give ids for a path with"):
        run_load(shop, ["/healthz"], users=1, duration_s=1, ids=[1, 2])
    with pytest.raises(PerflabError, match="method must be"):
        run_load(shop, ["/healthz"], users=1, duration_s=1, method="PUT")


def test_a_load_test_never_leaves_this_machine() -> None:
    with pytest.raises(PerflabError, match="only loads a server on this machine"):
        run_load("http://example.com/", users=1, duration_s=1)


def test_a_saturated_load_generator_is_reported() -> None:
    result = LoadResult("x", 10, 5.0, 1000, 0, 200.0, 10.0, 20.0, 30.0, generator_cpu=0.97)
    assert result.generator_saturated
    assert "it was the limit" in result.summary()


def test_capacity_shows_its_arithmetic() -> None:
    plan = capacity_module.capacity(100.0, users_per_day=1_000_000, requests_per_user=20,
                                    peak_factor=5, utilisation=0.5, cores_per_server=4)
    assert plan.average_rps == pytest.approx(231.48, rel=1e-3)
    assert plan.peak_rps == pytest.approx(1157.4, rel=1e-3)
    assert plan.cores == 24 and plan.servers == 6  # 1157.4 / (100 * 0.5) = 23.1 -> 24 cores
    steps = plan.steps()
    assert len(steps) == 4 and "24 cores" in steps[2] and "6 servers" in steps[3]
    with pytest.raises(PerflabError):
        capacity_module.capacity(0)


def test_cores_come_from_the_cpu_quota(tmp_path: Path) -> None:
    cpus = capacity_module.available_cores(tmp_path / "none")  # no cgroup files: the CPUs
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # Binder-style half a core
    assert capacity_module.available_cores(tmp_path) == 0.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert capacity_module.available_cores(tmp_path) == cpus
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert capacity_module.available_cores(v1) == min(1.0, cpus)


def test_percentiles_follow_locusts_histogram() -> None:
    from perflab.load import percentile

    # Locust's rule: the first time, from the slowest, with no more than the share below it.
    histogram = {1.0: 50, 2.0: 40, 10.0: 9, 100.0: 1}
    assert percentile(histogram, 0.49) == 1.0
    assert percentile(histogram, 0.5) == 2.0
    assert percentile(histogram, 0.95) == 10.0
    assert percentile(histogram, 0.99) == 100.0


def test_the_load_chart_draws_throughput_and_p95_per_series() -> None:
    from perflab.charts import load_chart

    def point(rps: float, p95: float, cpu: float = 0.2) -> LoadResult:
        return LoadResult("x", 8, 5.0, int(rps * 5), 0, rps, p95 / 2, p95, p95 * 1.5, cpu)

    fig = load_chart(
        {"sync": [(1, point(10, 800)), (3, point(28, 300))],
         "gthread": [(1, point(70, 120)), (3, point(150, 60, cpu=0.95))]},
        xlabel="workers", title="The delivery-quote page",
    )
    rps_ax, p95_ax = fig.axes
    assert rps_ax.get_ylabel() == "requests per second"
    assert p95_ax.get_ylabel() == "p95 latency (ms)"
    assert [line.get_label() for line in rps_ax.get_legend().get_lines()] == ["sync", "gthread"]
    hollow = [line for line in rps_ax.lines if line.get_fillstyle() == "none"]
    assert len(hollow) == 1 and list(hollow[0].get_ydata()) == [150]


def test_the_delivery_quote_pages_wait_on_the_carrier(lab: Any) -> None:
    upstream = lab.slow_upstream(delay_ms=50)
    server = lab.serve(worker_class="uvicorn", settings={"CARRIER_API_URL": upstream.url})
    try:
        for path in ("/delivery-quote/", "/delivery-quote/async/"):
            started = time.perf_counter()
            status, body = _get(server.url + path)
            assert status == 200 and b'"delay_ms": 50' in body
            assert time.perf_counter() - started >= 0.05
    finally:
        server.stop()
        upstream.stop()


def test_without_a_carrier_the_delivery_quote_says_what_is_missing(lab: Any) -> None:
    from django.test import override_settings

    from shop.views import delivery_quote

    with override_settings(CARRIER_API_URL=""):
        response = lab.get(delivery_quote, "/delivery-quote/")
    assert response.status_code == 503 and b"CARRIER_API_URL is not set" in response.content


def test_the_warm_up_is_not_counted(shop: Any) -> None:
    result = run_load(shop, ["/healthz"], users=2, duration_s=2, warmup_s=2)
    assert 1.5 < result.duration_s < 3.5  # the measured window, not the warm-up before it
    assert result.requests == pytest.approx(result.rps * result.duration_s, rel=0.3)
    assert result.server_cpu is not None and result.server_cpu > 0
