"""Metrics and correlated logs of real processes: gunicorn with several workers, Celery workers
with a prefork pool, read back from their Prometheus endpoints and their log files."""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import transaction

from core.models import OutboxMessage
from inventory.services import stock_adjust
from notifications.services import Notification, notifications_publish, webhook_endpoint_create
from notifications.services.publishing import EMAIL_BATCH_TASK
from orders.services.reservation import RESERVE_TASK
from tests.conftest import FLOW_WORKER_ENV
from tests.factories import make_product
from tests.flows.support import HTTP_TIMEOUT, user_with_token
from tests.metrics import sample, scrape
from tests.notifications.factories import order_payload
from tests.notifications.receiver import Response
from tests.processes import Worker, wait_until

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

MAX_ATTEMPTS = int(FLOW_WORKER_ENV["NOTIFY_MAX_RETRIES"])
RESERVE_RUNS = {"task": RESERVE_TASK, "outcome": "succeeded"}


def metrics_dir(kind: str, pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"orders-metrics-{kind}-{pid}"


def json_lines(worker: Worker) -> list[dict[str, Any]]:
    return [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]


def test_orders_placed_through_several_gunicorn_workers_are_counted_exactly(process_factory, live_worker):
    # given a web server of its own with two worker processes, logging which one answered
    web = process_factory.web(workers=2, env={"GUNICORN_CMD_ARGS": "--access-logformat 'pid=%(p)s \"%(r)s\" %(s)s'"})
    _, token = user_with_token("metrics-buyer")
    make_product("MET-WEB", stock=1000)
    headers = {"Authorization": f"Token {token}"}

    def place(_: int) -> int:
        body = {"items": [{"sku": "MET-WEB", "quantity": 1}]}
        return httpx.post(
            f"{web.base_url}/api/v1/orders/", json=body, headers=headers, timeout=HTTP_TIMEOUT
        ).status_code

    def answering_pids() -> set[str]:
        return set(re.findall(r"pid=<(\d+)> \"POST /api/v1/orders/ ", web.log()))

    # when orders are placed concurrently, in batches until both processes have answered some
    placed = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        while placed < 24 or len(answering_pids()) < 2:
            assert placed < 400, "every request went to one gunicorn worker"
            statuses = list(pool.map(place, range(8)))
            assert statuses == [202] * 8
            placed += 8

    # then this instance's /metrics counts every one of them, whichever process took it
    text = scrape(f"{web.base_url}/metrics")
    assert len(answering_pids()) >= 2
    assert sample(text, "orderservice_orders_created_total") == placed
    assert (
        sample(
            text,
            "django_http_responses_total_by_status_view_method_total",
            method="POST",
            status="202",
            view="order-list",
        )
        == placed
    )
    # and the scrape-time gauges are there
    assert sample(text, "orderservice_broker_reachable") == 1
    assert sample(text, "orderservice_queue_messages", queue="inventory") is not None
    assert sample(text, "orderservice_orders", status="pending") is not None
    assert sample(text, "orderservice_scrape_collector_success", collector="OrderDeskCollector") == 1


def test_a_web_instance_removes_its_metrics_directory_when_it_stops(process_factory):
    web = process_factory.web(workers=2)
    directory = metrics_dir("web", web.proc.pid)
    httpx.get(f"{web.base_url}/healthz", timeout=HTTP_TIMEOUT)
    assert any(directory.glob("counter_*.db"))

    web.stop()

    assert not directory.exists()


def test_task_metrics_survive_their_pool_processes_and_task_logs_carry_the_request_id(
    without_shared_workers, process_factory, live_web
):
    # given a product with 4 units
    _, token = user_with_token("metrics-customer")
    product = make_product("MET-TASK", stock=4)
    client = httpx.Client(base_url=f"{live_web.base_url}/api/v1", headers={"Authorization": f"Token {token}"})
    request_id = str(uuid.uuid4())

    # when four orders of one unit are placed (the first with a request id of its own), one unit
    # is written off before any is reserved, and then a worker starts whose pool replaces each
    # process after one task, logging JSON lines (the first order's task is the only one sent:
    # the others find it on its way, and its batch reserves the four)
    responses = [
        client.post(
            "/orders/", json={"items": [{"sku": "MET-TASK", "quantity": 1}]}, headers={"X-Request-ID": request_id}
        ),
        *(client.post("/orders/", json={"items": [{"sku": "MET-TASK", "quantity": 1}]}) for _ in range(3)),
    ]
    client.close()
    assert [r.status_code for r in responses] == [202] * 4
    stock_adjust(product=product, delta=-1, reason="damaged")
    worker = process_factory.worker(
        name="metrics", concurrency=1, args=["--max-tasks-per-child", "1"], env={"LOG_FORMAT": "json"}
    )
    order_id = responses[0].json()["id"]

    # then the worker's endpoint counts every reservation, run in pool processes now gone
    def counted() -> str | None:
        text = scrape(worker.metrics_url())
        sent = sample(text, "orderservice_notification_deliveries_total", channel="email", outcome="sent")
        # each order mails its customer once reserved or rejected
        return text if sent == 4 and sample(text, "orderservice_task_runs_total", **RESERVE_RUNS) == 1 else None

    text = wait_until(counted, timeout=60, message="one reservation task, four orders and four e-mails counted")
    assert sample(text, "orderservice_task_runs_total", **RESERVE_RUNS) == 1
    assert sample(text, "orderservice_task_run_duration_seconds_count", task=RESERVE_TASK) == 1
    assert sample(text, "orderservice_order_reservations_total", outcome="reserved") == 3
    assert sample(text, "orderservice_order_reservations_total", outcome="rejected") == 1
    assert sample(text, "orderservice_order_transitions_total", from_status="pending", to_status="reserved") == 3
    assert sample(text, "orderservice_order_transitions_total", from_status="pending", to_status="rejected") == 1
    # the three reserved orders' e-mails are sent as one batch (after their fan-out), the rejected one's alone
    assert sample(text, "orderservice_task_runs_total", task=EMAIL_BATCH_TASK, outcome="succeeded") == 2
    # three tasks, each in a process of its own, each process with its own file of counts
    assert len(list(metrics_dir("worker", worker.proc.pid).glob("counter_*.db"))) >= 3

    # and the reservation's log line carries the request's id, its task's id and the order's id
    reserve_task_id = str(OutboxMessage.objects.get(task_name=RESERVE_TASK, args=[order_id]).pk)
    [reserved] = [line for line in json_lines(worker) if line["message"] == f"Order {order_id} reserved"]
    assert reserved["request_id"] == request_id
    assert reserved["task_id"] == reserve_task_id
    assert reserved["order_id"] == order_id
    # as does the e-mail that the reservation caused, through the outbox row it wrote
    [mailed] = [
        line
        for line in json_lines(worker)
        if line["name"] == "notifications.services.emails" and line["order_id"] == order_id
    ]
    assert mailed["request_id"] == request_id
    assert mailed["task_id"] not in (None, reserve_task_id)


def test_a_failing_webhook_endpoint_shows_in_delivery_task_and_dead_letter_counts(
    without_shared_workers, process_factory, webhook_receiver, dead_letter_queues_empty
):
    # given a worker of its own and a merchant endpoint that always answers 500
    worker = process_factory.worker(name="metrics-webhooks")
    endpoint = webhook_endpoint_create(url=webhook_receiver.url, events=["order.paid"])
    webhook_receiver.secret = endpoint.secret
    webhook_receiver.respond(then=Response(500))

    # when an event is published to it
    with transaction.atomic():
        notifications_publish(notifications=[Notification("order.paid", order_payload(), None)])

    # then every attempt is counted by outcome, and the message that gave up as dead-lettered
    task = "notifications.tasks.webhook_delivery_send_task"

    def gave_up() -> str | None:
        text = scrape(worker.metrics_url())
        return text if sample(text, "orderservice_messages_dead_lettered_total", queue="webhooks",
                              reason="failed") == 1 else None  # fmt: skip

    text = wait_until(gave_up, timeout=60, message="the delivery to be dead-lettered")
    assert sample(text, "orderservice_notification_deliveries_total", channel="webhook", outcome="retry") == (
        MAX_ATTEMPTS - 1
    )
    assert sample(text, "orderservice_notification_deliveries_total", channel="webhook", outcome="gave_up") == 1
    assert sample(text, "orderservice_notification_deliveries_total", channel="webhook", outcome="sent") == 0
    assert sample(text, "orderservice_task_runs_total", task=task, outcome="retried") == MAX_ATTEMPTS - 1
    assert sample(text, "orderservice_task_runs_total", task=task, outcome="failed") == 1
