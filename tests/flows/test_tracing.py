"""Tracing for real: gunicorn, a Celery worker and beat export their spans with the OTLP exporter
to a receiver in the test (tests/otlp_receiver.py), and one trace runs from the order's POST to
the merchant's webhook, whoever publishes each task and whenever."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from core.models import OutboxMessage
from notifications.services import webhook_endpoint_create
from orders.services.reservation import RESERVE_TASK
from tests.factories import make_product
from tests.faults import free_port
from tests.flows.support import Api, user_with_token
from tests.notifications.receiver import WebhookReceiver
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.processes import ProcessFactory, wait_until

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

WAIT = 60.0
WEB, WORKER = "order-service-web", "order-service-worker"


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


def tracing_env(otlp: OtlpReceiver, **extra: str) -> dict[str, str]:
    # Spans exported within a fifth of a second rather than the default five.
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200", **extra}


def ancestry(otlp: OtlpReceiver, span: ReceivedSpan) -> list[ReceivedSpan] | None:
    """The span and its parents up to the root of its trace; None while a parent is missing."""
    spans = otlp.trace(span.trace_id)
    chain = [span]
    while chain[-1].parent_id:
        parent = spans.get(chain[-1].parent_id)
        if parent is None:
            return None
        chain.append(parent)
    return chain


def wait_for_ancestry(otlp: OtlpReceiver, span: ReceivedSpan) -> list[ReceivedSpan]:
    return wait_until(lambda: ancestry(otlp, span), timeout=WAIT, message=f"every parent of {span.name}")


def is_order_post(span: ReceivedSpan) -> bool:
    return span.kind == "server" and span.service == WEB and span.name.startswith("POST") and "orders" in span.name


def test_one_trace_runs_from_the_orders_post_through_the_reservation_to_the_merchants_webhook(
    process_factory: ProcessFactory, without_shared_workers: None, otlp: OtlpReceiver, webhook_receiver: WebhookReceiver
):
    # given gunicorn and a worker that trace, logging JSON, and a merchant subscribed to order.reserved
    env = tracing_env(otlp, LOG_FORMAT="json")
    web = process_factory.web(workers=1, env=env)
    worker = process_factory.worker(name="traced", env=env)
    webhook_receiver.secret = webhook_endpoint_create(url=webhook_receiver.url, events=["order.reserved"]).secret
    make_product("TRACE-1", stock=5)
    _, token = user_with_token("traced-customer")
    api = Api(web.base_url, token)

    # when the customer places an order
    response = api.place_order([{"sku": "TRACE-1", "quantity": 1}])
    assert response.status_code == 202, response.text
    order_id = response.json()["id"]

    # then the merchant gets its webhook, without our trace context
    wait_until(lambda: webhook_receiver.requests, timeout=WAIT, message="the webhook")
    assert "traceparent" not in webhook_receiver.requests[0].headers

    # and the webhook's POST is in the trace of the order's POST: one tree, from the request in
    # the web process through each publish and task run in the worker
    webhook_post = otlp.wait_for(
        lambda s: s.kind == "client" and s.attributes.get("url.full") == webhook_receiver.url,
        timeout=WAIT,
        message="the webhook's span",
    )
    chain = wait_for_ancestry(otlp, webhook_post)
    assert [(s.name, s.kind, s.service) for s in chain] == [
        ("POST", "client", WORKER),
        ("run/notifications.tasks.webhook_delivery_send_task", "consumer", WORKER),
        ("publish notifications.tasks.webhook_delivery_send_task", "producer", WORKER),
        ("run/notifications.tasks.notification_fan_out_task", "consumer", WORKER),
        ("publish notifications.tasks.notification_fan_out_task", "producer", WORKER),
        (f"run/{RESERVE_TASK}", "consumer", WORKER),
        (f"publish {RESERVE_TASK}", "producer", WEB),
        (chain[-1].name, "server", WEB),
    ]
    root = chain[-1]
    assert is_order_post(root), root
    assert webhook_post.attributes["http.response.status_code"] == 200

    # and the same trace holds the request's and the reservation's database statements and the
    # customer's e-mail, every span of it under the request
    reservation = chain[5]
    trace = otlp.trace(root.trace_id)
    email = otlp.wait_for(
        lambda s: s.trace_id == root.trace_id and s.name == "email send", timeout=WAIT, message="the e-mail's span"
    )
    statements = [s for s in trace.values() if s.attributes.get("db.system") == "postgresql"]
    assert any(s.parent_id == root.span_id for s in statements)
    assert any(s.parent_id == reservation.span_id for s in statements)
    assert reservation in wait_for_ancestry(otlp, email)
    assert [s for s in trace.values() if not s.parent_id] == [root]

    # and the worker's log lines of that order carry the trace id
    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    reserved = [line for line in lines if line["message"] == f"Order {order_id} reserved"]
    assert [line["trace_id"] for line in reserved] == [root.trace_id]


def test_an_order_the_relay_publishes_later_stays_in_the_trace_of_its_request(
    process_factory: ProcessFactory, without_shared_workers: None, otlp: OtlpReceiver
):
    # given a web process that cannot reach RabbitMQ, so its orders wait in the outbox, and a
    # worker and beat that can: the relay, a task beat sends every second, publishes them
    env = tracing_env(otlp, LOG_FORMAT="text", OUTBOX_RELAY_SECONDS="1")
    web = process_factory.web(
        workers=1, env={**env, "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}//"}
    )
    worker = process_factory.worker(name="relaying", env=env)
    process_factory.beat(env=env)
    make_product("TRACE-2", stock=5)
    _, token = user_with_token("relayed-customer")
    api = Api(web.base_url, token)

    # when an order is placed
    response = api.place_order([{"sku": "TRACE-2", "quantity": 1}])
    assert response.status_code == 202, response.text
    order_id = response.json()["id"]

    # then its reservation runs in the trace of the request, under a publish made by the relay
    # in the worker, which links back to the relay's own run
    run = otlp.wait_for(
        lambda s: s.name == f"run/{RESERVE_TASK}",
        timeout=WAIT,
        message="the reservation's span",
    )
    run, publish, root = wait_for_ancestry(otlp, run)
    assert (publish.name, publish.service) == (f"publish {RESERVE_TASK}", WORKER)
    assert is_order_post(root), root
    (link,) = publish.links
    relay = otlp.wait_for(lambda s: (s.trace_id, s.span_id) == link, timeout=WAIT, message="the relay's span")
    assert relay.name == "run/core.tasks.outbox_relay_task"
    assert relay.trace_id != root.trace_id
    # and the outbox row kept the request's trace context, sampled
    row = OutboxMessage.objects.get(task_name=RESERVE_TASK, args=[order_id])
    assert row.published_at is not None
    assert row.traceparent.startswith(f"00-{root.trace_id}-")
    assert int(row.traceparent.rsplit("-", 1)[1], 16) & 1  # the "sampled" flag
    # and the worker's text log lines show the trace id
    assert f"trace={root.trace_id}] orders.services.reservation: Order {order_id} reserved" in worker.log()
