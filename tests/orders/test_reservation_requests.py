"""Orders placed while a reservation task is on its way send no task of their own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from django_redis import get_redis_connection

from core import outbox
from core.models import OutboxMessage
from orders.models import Order
from orders.reservation_requests import (
    REQUEST_KEY,
    REQUEST_SECONDS,
    RESERVATION_GATHER_SECONDS,
    reservation_request_claim,
    reservation_requests_taken,
)
from orders.services import order_reservation_sweep, order_reserve
from orders.services.reservation import RESERVATION_SWEEP_AFTER, RESERVE_TASK
from orders.tasks import order_reserve_task
from tests.factories import make_order, make_product

# Autocommit, as in production: each order's after-commit publish runs as it is placed.
pytestmark = pytest.mark.django_db(transaction=True)

UNREACHABLE_REDIS = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
# The after-commit publish itself (tests other than flow tests replace it with nothing).
PUBLISH_AFTER_COMMIT = outbox._publish_after_commit


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[Any]]]:
    """The args of every reservation task the after-commit publish hands to the broker: recorded
    here, not sent (a worker of a flow test would take them)."""
    handed: list[list[Any]] = []

    def record(messages: list[OutboxMessage], connection: Any, *, timeout: float) -> None:
        handed.extend(m.args for m in messages if m.task_name == RESERVE_TASK)

    monkeypatch.setattr("core.outbox._publish_after_commit", PUBLISH_AFTER_COMMIT)
    monkeypatch.setattr("core.outbox._publish_confirmed", record)
    yield handed


def statuses() -> dict[int, str]:
    return dict(Order.objects.values_list("pk", "status"))


def test_the_orders_placed_while_a_task_is_on_its_way_send_none_and_its_batch_takes_them(sent):
    product = make_product(stock=10)

    # when three orders are placed one after the other
    first, *_ = [make_order(lines=[(product, 1)]) for _ in range(3)]

    # then only the first sends its task; the others' rows are marked published all the same
    assert sent == [[first.pk]]
    assert not OutboxMessage.objects.filter(task_name=RESERVE_TASK, published_at__isnull=True).exists()

    # and that task's batch reserves all three
    assert order_reserve(order_id=first.pk) == "reserved"
    assert set(statuses().values()) == {"reserved"}

    # and the first order placed after it sends a task of its own
    fourth = make_order(lines=[(product, 1)])
    assert sent == [[first.pk], [fourth.pk]]


def test_an_order_that_found_the_task_on_its_way_is_in_its_batch_however_late(sent, monkeypatch):
    # given a task on its way for the first order
    product = make_product(stock=10)
    first = make_order(lines=[(product, 1)])
    late: list[Order] = []

    def placed_elsewhere() -> None:
        try:
            late.append(make_order(lines=[(product, 1)]))
        finally:
            connection.close()

    def taken_after_a_last_order() -> None:
        # another process places an order at the last moment the mark still stands
        placing = threading.Thread(target=placed_elsewhere)
        placing.start()
        placing.join(timeout=30)
        reservation_requests_taken()

    monkeypatch.setattr("orders.services.reservation.reservation_requests_taken", taken_after_a_last_order)

    # when the task's batch runs
    order_reserve(order_id=first.pk)

    # then the late order sent no task, and the batch took it
    assert sent == [[first.pk]]
    assert statuses() == {first.pk: "reserved", late[0].pk: "reserved"}


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait of a reservation task for the orders placed after it, in seconds: recorded, not waited."""
    waited: list[float] = []
    monkeypatch.setattr("orders.reservation_requests.time", SimpleNamespace(sleep=waited.append))
    return waited


def test_the_task_sent_waits_for_the_orders_placed_after_it_and_its_batch_takes_them(sent, monkeypatch):
    product = make_product(stock=10)
    first = make_order(lines=[(product, 1)])
    waited: list[float] = []

    def wait(seconds: float) -> None:  # orders placed while the task waits
        waited.append(seconds)
        make_order(lines=[(product, 1)])
        make_order(lines=[(product, 1)])

    monkeypatch.setattr("orders.reservation_requests.time", SimpleNamespace(sleep=wait))

    # when the first order's task runs, as sent on its placement
    assert order_reserve_task(first.pk) == "reserved"

    # then it waited out what was left of the mark's gathering time, the orders placed meanwhile
    # sent no task, and its batch reserved them too
    assert len(waited) == 1 and 0 < waited[0] <= RESERVATION_GATHER_SECONDS
    assert sent == [[first.pk]]
    assert set(statuses().values()) == {"reserved"} and len(statuses()) == 3

    # and delivered again, with no mark standing (its batch removed it), it starts at once
    assert order_reserve_task(first.pk) == "reserved"
    assert len(waited) == 1


def test_a_task_starts_at_once_when_the_gathering_is_over_or_it_does_not_gather(sent, waits):
    product = make_product(stock=10)
    redis = get_redis_connection("default")

    # a mark older than the gathering time: the task waited in its queue long enough
    first = make_order(lines=[(product, 1)])
    redis.pexpire(REQUEST_KEY, int((REQUEST_SECONDS - RESERVATION_GATHER_SECONDS - 0.5) * 1000))
    assert order_reserve_task(first.pk) == "reserved"

    # a full batch's follow-up, a young mark standing
    second = make_order(lines=[(product, 1)])
    assert redis.exists(REQUEST_KEY)
    assert order_reserve_task(second.pk, gather=False) == "reserved"

    # Redis unreachable
    third = make_order(lines=[(product, 1)])
    with override_settings(CACHES=UNREACHABLE_REDIS):
        assert order_reserve_task(third.pk) == "reserved"

    assert waits == []


def test_a_task_that_could_not_be_sent_leaves_the_next_order_to_send_its_own(monkeypatch):
    # given RabbitMQ refusing the first order's task
    def refused(messages: list[OutboxMessage], connection: Any, *, timeout: float) -> None:
        raise outbox.PublishNotConfirmed("refused")

    monkeypatch.setattr("core.outbox._publish_after_commit", PUBLISH_AFTER_COMMIT)
    monkeypatch.setattr("core.outbox._publish_confirmed", refused)
    monkeypatch.setattr("core.outbox._broker_unavailable_until", 0.0)
    product = make_product(stock=10)
    first = make_order(lines=[(product, 1)])

    # then its row waits for the relay, and no mark says a task is on its way
    assert OutboxMessage.objects.get(task_name=RESERVE_TASK, args=[first.pk]).published_at is None
    assert not get_redis_connection("default").exists(REQUEST_KEY)

    # and once the broker takes messages again, the next order sends its task
    sent: list[list[Any]] = []
    monkeypatch.setattr(
        "core.outbox._publish_confirmed",
        lambda messages, connection, *, timeout: sent.extend(m.args for m in messages if m.task_name == RESERVE_TASK),
    )
    monkeypatch.setattr("core.outbox._broker_unavailable_until", 0.0)
    second = make_order(lines=[(product, 1)])
    assert sent == [[second.pk]]


def test_with_redis_unreachable_every_order_sends_its_task_and_batches_still_run(sent):
    product = make_product(stock=10)
    with override_settings(CACHES=UNREACHABLE_REDIS):
        orders = [make_order(lines=[(product, 1)]) for _ in range(3)]
        assert sent == [[order.pk] for order in orders]

        assert order_reserve(order_id=orders[0].pk) == "reserved"
        assert set(statuses().values()) == {"reserved"}


def test_a_task_whose_order_was_taken_still_reserves_the_orders_pending(sent):
    product = make_product(stock=10)
    first = make_order(lines=[(product, 1)])
    order_reserve(order_id=first.pk)
    later = [make_order(lines=[(product, 1)]) for _ in range(2)]

    # the first order's task delivered again
    assert order_reserve(order_id=first.pk) == "reserved"

    assert statuses() == {first.pk: "reserved", later[0].pk: "reserved", later[1].pk: "reserved"}


def test_the_sweep_queues_the_reservation_of_an_order_left_pending_too_long():
    # given an order pending for longer than any batch takes (its task lost), and a young one
    product = make_product(stock=10)
    left, young = make_order(lines=[(product, 1)]), make_order(lines=[(product, 1)])
    Order.objects.filter(pk=left.pk).update(created_at=timezone.now() - RESERVATION_SWEEP_AFTER - timedelta(seconds=1))

    # when the sweep runs, it queues the reservation of the oldest, once per run
    assert order_reservation_sweep() == left.pk
    tasks = OutboxMessage.objects.filter(task_name=RESERVE_TASK)
    assert sorted(m.args[0] for m in tasks) == sorted([left.pk, left.pk, young.pk])

    # then its batch takes both, and the next sweep finds nothing to do
    order_reserve(order_id=left.pk)
    assert set(statuses().values()) == {"reserved"}
    assert order_reservation_sweep() is None

    # and beat runs it
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "orders.tasks.order_reservation_sweep_task" in scheduled


def test_the_mark_says_a_task_is_on_its_way_for_a_bounded_time():
    assert reservation_request_claim() is True
    assert reservation_request_claim() is False
    assert 0 < get_redis_connection("default").ttl(REQUEST_KEY) <= REQUEST_SECONDS
