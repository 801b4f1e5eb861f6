"""The metrics plumbing in one process: the view, counting after commit, the metrics directory."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.db import transaction
from prometheus_client import REGISTRY

from config import metrics_dirs
from core.metrics import RECORDED_REQUEST_METRICS
from core.readings import QueueDepth
from inventory.models import Product
from tests.factories import bulk_orders, make_product
from tests.flows.support import user_with_token
from tests.metrics import sample


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.django_db
def test_metrics_are_prometheus_text_with_the_scrape_time_gauges(client):
    # given two pending orders
    customer, _ = user_with_token("gauges")
    bulk_orders(customer=customer, product=make_product("GAUGE-1", stock=5), count=2, quantity=1)

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    assert sample(text, "orderservice_orders", status="pending") == 2
    assert sample(text, "orderservice_orders", status="paid") == 0
    assert sample(text, "orderservice_oldest_pending_order_age_seconds") >= 0
    assert sample(text, "orderservice_outbox_unpublished_messages") is not None
    assert sample(text, "orderservice_dead_letter_queue_messages", queue="orders.dlq") is not None
    assert sample(text, "django_http_requests_total_by_method_total", method="GET") is not None


@pytest.mark.django_db
def test_database_and_cache_calls_are_counted_by_django_prometheus(client):
    # given queries through the database wrapper and reads through the django-redis cache
    from django.core.cache import cache

    queries = value("django_db_execute_total", alias="default", vendor="postgresql")
    gets = value("django_cache_get_total", backend="redis")
    Product.objects.count()
    cache.set("metrics-probe", {"n": 1}, 5)
    assert cache.get("metrics-probe") == {"n": 1}
    cache.get("metrics-absent")

    # then /metrics shows them
    text = client.get("/metrics").content.decode()
    assert (sample(text, "django_db_execute_total", alias="default", vendor="postgresql") or 0) > queries
    assert (sample(text, "django_cache_get_total", backend="redis") or 0) >= gets + 2
    assert (sample(text, "django_cache_get_hits_total", backend="redis") or 0) >= 1
    assert (sample(text, "django_cache_get_misses_total", backend="redis") or 0) >= 1


@pytest.mark.django_db
def test_metrics_answer_without_the_readings_that_fail(client, monkeypatch):
    # given RabbitMQ unreachable and the order figures failing
    monkeypatch.setattr(
        "core.gauges.queue_depths",
        lambda: [QueueDepth("orders", None, None, False), QueueDepth("orders.dlq", None, None, True)],
    )

    def broken() -> None:
        raise RuntimeError("database down")

    monkeypatch.setattr("orders.metrics.order_desk_stats", broken)

    response = client.get("/metrics")

    assert response.status_code == 200
    text = response.content.decode()
    assert sample(text, "orderservice_broker_reachable") == 0
    assert sample(text, "orderservice_queue_messages", queue="orders") is None
    assert sample(text, "orderservice_scrape_collector_success", collector="OrderDeskCollector") == 0
    assert sample(text, "orderservice_scrape_collector_success", collector="OutboxCollector") == 1
    assert sample(text, "orderservice_orders", status="pending") is None


@pytest.mark.django_db
def test_an_order_is_counted_when_its_transaction_commits_and_not_when_it_rolls_back(
    api_client, django_capture_on_commit_callbacks
):
    # given a customer and a product
    _customer, token = user_with_token("counted")
    make_product("COUNT-1", stock=5)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    before = value("orderservice_orders_created_total")

    # when one order is placed, and another is placed inside a transaction that rolls back
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/api/v1/orders/", {"items": [{"sku": "COUNT-1", "quantity": 1}]}, format="json")
    assert response.status_code == 202
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        api_client.post("/api/v1/orders/", {"items": [{"sku": "COUNT-1", "quantity": 1}]}, format="json")
        raise RuntimeError("rolled back")

    # then only the committed one is counted
    assert value("orderservice_orders_created_total") == before + 1
    assert Product.objects.get(sku="COUNT-1").available == 5


@pytest.mark.django_db
def test_a_cancellation_is_counted_by_its_statuses(api_client, django_capture_on_commit_callbacks):
    customer, token = user_with_token("canceller")
    [order] = bulk_orders(customer=customer, product=make_product("COUNT-2", stock=5), count=1, quantity=1)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    labels = {"from_status": "pending", "to_status": "cancelled"}
    before = value("orderservice_order_transitions_total", **labels)

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(f"/api/v1/orders/{order.pk}/cancel/")

    assert response.status_code == 200
    assert value("orderservice_order_transitions_total", **labels) == before + 1


@pytest.mark.django_db
def test_payment_callbacks_are_counted_by_outcome(api_client):
    before = value("orderservice_payment_callbacks_total", outcome="invalid_signature")

    response = api_client.post(
        "/api/v1/payments/webhook/",
        data=b"{}",
        content_type="application/json",
        HTTP_WEBHOOK_ID="msg_1",
        HTTP_WEBHOOK_TIMESTAMP="1",
        HTTP_WEBHOOK_SIGNATURE="v1,bad",
    )

    assert response.status_code == 401
    assert value("orderservice_payment_callbacks_total", outcome="invalid_signature") == before + 1


@pytest.fixture
def metrics_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(metrics_dirs.ROOT_ENV, str(tmp_path))
    monkeypatch.delenv(metrics_dirs.MULTIPROC_ENV, raising=False)
    # The suite's own prometheus_client is in single-process mode; pretend it is not imported yet.
    monkeypatch.delitem(__import__("sys").modules, "prometheus_client.values")
    return tmp_path


def test_an_instance_gets_a_directory_of_its_own_and_stale_ones_are_removed(metrics_root):
    # given the directory of a process that no longer runs, and one of a running process
    stale = metrics_root / "orders-metrics-web-999999999"
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"x")
    running = metrics_root / "orders-metrics-worker-1"  # pid 1 is always running
    running.mkdir()

    path = metrics_dirs.metrics_dir_create("web")

    assert path == metrics_root / f"orders-metrics-web-{os.getpid()}"
    assert path.is_dir()
    assert os.environ[metrics_dirs.MULTIPROC_ENV] == str(path)
    assert not stale.exists()
    assert running.exists()


def test_the_directory_is_kept_when_the_same_process_asks_again(metrics_root):
    path = metrics_dirs.metrics_dir_create("web")
    (path / "counter_1.db").write_bytes(b"counts")

    assert metrics_dirs.metrics_dir_create("web") == path
    assert (path / "counter_1.db").exists()


def test_prometheus_client_imported_in_single_process_mode_first_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv(metrics_dirs.ROOT_ENV, str(tmp_path))

    with pytest.raises(RuntimeError, match="imported before"):
        metrics_dirs.metrics_dir_create("web")


def test_a_process_file_still_being_created_does_not_fail_the_scrape(tmp_path: Path):
    # given a metrics directory with one process's counter file, and another process's file
    # just created and not yet sized (a pool process starting: its file exists, empty)
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    from core.metrics import ProcessFilesCollector

    counts = MmapedDict(str(tmp_path / "counter_101.db"))
    counts.write_value(mmap_key("orderservice_x_total", "orderservice_x_total", [], [], ""), 3.0, 0.0)
    counts.close()
    (tmp_path / "counter_102.db").touch()

    # when the directory is scraped
    registry = CollectorRegistry()
    ProcessFilesCollector(registry, path=str(tmp_path))
    text = generate_latest(registry).decode()

    # then the first process's count is there (prometheus_client's own collector raises here)
    assert sample(text, "orderservice_x_total") == 3.0


@pytest.mark.django_db
def test_request_metrics_count_each_request_under_its_own_labels(client):
    # given the counts of two views' answers so far
    def answered(view: str, status: str) -> float:
        labels = {"status": status, "view": view, "method": "GET"}
        return value("django_http_responses_total_by_status_view_method_total", **labels)

    health, missing = answered("healthz", "200"), answered("<unnamed view>", "404")

    # when one is asked twice and the other once
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/no-such-page/").status_code == 404

    # then each series counted its own answers
    assert answered("healthz", "200") == health + 2
    assert answered("<unnamed view>", "404") == missing + 1


@pytest.mark.django_db
def test_each_request_records_the_request_metrics_read_and_no_others(client):
    # given the request metrics so far
    by_status = value("django_http_responses_total_by_status_total", status="200")
    view_latency = {"view": "healthz", "method": "GET"}
    latency = value("django_http_requests_latency_seconds_by_view_method_count", **view_latency)
    whole_stack = value("django_http_requests_latency_including_middlewares_seconds_count")

    # when a request is answered
    assert client.get("/healthz").status_code == 200

    # then the metrics the alerts and the dashboard read counted it
    assert value("django_http_responses_total_by_status_total", status="200") == by_status + 1
    assert value("django_http_requests_latency_seconds_by_view_method_count", **view_latency) == latency + 1
    assert value("django_http_requests_latency_including_middlewares_seconds_count") == whole_stack + 1

    # and /metrics offers none of those left out
    def family(name: str) -> str:
        return re.sub(r"(_total)?(_bucket|_count|_sum|_created|_total)?$", "", name)

    lines = client.get("/metrics").content.decode().splitlines()
    offered = {family(line.split("{")[0].split(" ")[0]) for line in lines if line.startswith("django_http_")}
    assert offered and offered <= {family(name) for name in RECORDED_REQUEST_METRICS}, offered
