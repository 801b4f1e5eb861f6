"""Retention: every table that grows with traffic is pruned past its age, in batches, on beat;
the business record (orders, their lines and events, the stock ledger) is never touched."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from core import tasks as core_tasks
from core.models import IdempotencyKey, OutboxMessage, TaskFailure
from core.retention import rows_prune
from inventory.models import StockLedgerEntry
from notifications import tasks as notification_tasks
from notifications.models import DeliveryAttempt
from orders import tasks as order_tasks
from orders.models import Order, OrderEvent, OrderLine, OrderStatus, PaymentWebhookReceipt
from orders.services import order_reserve
from tests.factories import UserFactory, make_order, make_product
from tests.notifications.factories import WebhookDeliveryFactory
from tests.processes import ROOT

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def outbox_row(age: timedelta) -> Model:
    return OutboxMessage.objects.create(task_name="t", published_at=timezone.now() - age)


def idempotency_key(age: timedelta) -> Model:
    return IdempotencyKey.objects.create(
        user=UserFactory.create(),
        key=f"k-{uuid.uuid4().hex}",
        request_fingerprint="f",
        response_status=202,
        response_body={},
        created_at=timezone.now() - age,
    )


def task_failure(age: timedelta) -> Model:
    return TaskFailure.objects.create(task_id="t", task_name="t", error="e", failed_at=timezone.now() - age)


def payment_receipt(age: timedelta) -> Model:
    return PaymentWebhookReceipt.objects.create(
        webhook_id=f"msg_{uuid.uuid4().hex}",
        event_type="payment.succeeded",
        outcome=PaymentWebhookReceipt.Outcome.UNKNOWN_ORDER,
        payload={},
        received_at=timezone.now() - age,
    )


def delivery_attempt(age: timedelta) -> Model:
    delivery = WebhookDeliveryFactory.create()
    return DeliveryAttempt.objects.create(
        delivery=delivery, number=1, attempted_at=timezone.now() - age, duration_ms=5, status_code=200
    )


# (the table's row maker, its retention setting and unit, its periodic task)
RULES: dict[str, tuple[Callable[[timedelta], Model], str, timedelta, Callable[[], int]]] = {
    "outbox": (outbox_row, "OUTBOX_RETENTION_HOURS", HOUR, core_tasks.outbox_prune_task),
    "idempotency keys": (
        idempotency_key,
        "IDEMPOTENCY_KEY_RETENTION_HOURS",
        HOUR,
        core_tasks.idempotency_key_prune_task,
    ),
    "task failures": (task_failure, "TASK_FAILURE_RETENTION_DAYS", DAY, core_tasks.task_failure_prune_task),
    "payment receipts": (
        payment_receipt,
        "PAYMENT_RECEIPT_RETENTION_DAYS",
        DAY,
        order_tasks.payment_receipt_prune_task,
    ),
    "webhook attempts": (
        delivery_attempt,
        "WEBHOOK_ATTEMPT_RETENTION_DAYS",
        DAY,
        notification_tasks.delivery_attempt_prune_task,
    ),
}


@pytest.mark.parametrize("rule", RULES)
def test_rows_older_than_their_retention_are_pruned_and_younger_ones_kept(rule: str):
    make_row, setting, unit, task = RULES[rule]
    # given rows just past the configured retention and rows just within it
    keep_for = getattr(settings, setting) * unit
    old = [make_row(keep_for + 10 * unit) for _ in range(3)] + [make_row(keep_for + 0.01 * unit)]
    young = [make_row(keep_for - 0.01 * unit), make_row(timedelta(0))]
    model = type(old[0])

    # when beat's task runs
    deleted = task()

    # then only the old ones are gone
    assert deleted == len(old)
    assert set(model._default_manager.values_list("pk", flat=True)) == {row.pk for row in young}


@pytest.mark.parametrize("rule", RULES)
def test_the_retention_is_configurable(rule: str, settings):
    make_row, setting, unit, task = RULES[rule]
    setattr(settings, setting, getattr(settings, setting) * 2)
    within_the_longer_retention = make_row(getattr(settings, setting) * unit * 0.75)

    assert task() == 0
    assert type(within_the_longer_retention)._default_manager.filter(pk=within_the_longer_retention.pk).exists()


def test_the_beat_schedule_runs_every_prune_at_the_configured_interval():
    scheduled = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    for _make_row, _setting, _unit, task in RULES.values():
        assert scheduled[task.name] == settings.RETENTION_PRUNE_SECONDS


def test_pruning_goes_in_batches_oldest_first_and_stops_at_its_time_budget():
    rows = [outbox_row(DAY * (10 - n)) for n in range(5)]  # oldest first
    expired = OutboxMessage.objects.filter(published_at__lt=timezone.now() - HOUR)

    # a budget of zero: one batch, then the rest is left to the next run
    assert rows_prune(expired, age_field="published_at", batch_size=2, time_budget_seconds=0) == 2
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {row.pk for row in rows[2:]}
    assert rows_prune(expired, age_field="published_at", batch_size=2, time_budget_seconds=None) == 3
    assert not OutboxMessage.objects.exists()


def test_the_business_record_is_never_pruned():
    # given an order that ended long ago (its lines, events and ledger rows as old), and every
    # pruned table holding old rows
    order = make_order(lines=[(make_product(stock=5), 1)])
    order_reserve(order_id=order.pk)
    long_ago = timezone.now() - 1000 * DAY
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.EXPIRED, created_at=long_ago)
    OrderEvent.objects.filter(order=order).update(created_at=long_ago)
    StockLedgerEntry.objects.update(created_at=long_ago)
    for make_row, _setting, _unit, _task in RULES.values():
        make_row(1000 * DAY)
    record = (OrderLine.objects.count(), OrderEvent.objects.count(), StockLedgerEntry.objects.count())

    # when every prune runs
    for _make_row, _setting, _unit, task in RULES.values():
        task()

    # then the order and everything about it is still there
    assert Order.objects.filter(pk=order.pk).exists()
    assert (OrderLine.objects.count(), OrderEvent.objects.count(), StockLedgerEntry.objects.count()) == record
    assert record[1] >= 2  # placed and reserved


@pytest.mark.django_db(transaction=True)
def test_a_second_pruner_skips_the_rows_the_first_holds_instead_of_waiting():
    # given old rows, some of them locked by another pruner's open transaction
    rows = [outbox_row(10 * DAY) for _ in range(6)]
    held = threading.Event()
    release = threading.Event()

    def other_pruner() -> None:
        with transaction.atomic():
            list(OutboxMessage.objects.select_for_update().filter(pk__in=[row.pk for row in rows[:2]]))
            held.set()
            release.wait(timeout=30)
        connection.close()

    thread = threading.Thread(target=other_pruner)
    thread.start()
    try:
        assert held.wait(timeout=10)
        # when this one prunes meanwhile, then it deletes the others without waiting for the lock
        deleted = rows_prune(
            OutboxMessage.objects.filter(published_at__lt=timezone.now() - HOUR), age_field="published_at"
        )
    finally:
        release.set()
        thread.join()
    assert deleted == 4
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {row.pk for row in rows[:2]}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("IDEMPOTENCY_KEY_RETENTION_HOURS", "23"),
        ("PAYMENT_RECEIPT_RETENTION_DAYS", "1"),
        ("RETENTION_PRUNE_SECONDS", "0"),
    ],
)
def test_a_retention_below_its_minimum_refuses_to_start(variable: str, value: str):
    env: dict[str, Any] = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings.test", variable: value}

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode != 0
    assert f"{variable} must be at least" in result.stderr
