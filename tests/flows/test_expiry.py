"""Unpaid orders expire on time, driven by the real beat and worker processes."""

from datetime import timedelta

import pytest

from notifications.models import EmailNotification
from orders.models import Order, OrderEvent, OrderStatus
from tests.factories import make_order, make_product
from tests.flows.support import assert_stock_reconciles, available, user_with_token
from tests.processes import wait_until

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

PAYMENT_TIMEOUT_SECONDS = 3
SWEEP_SECONDS = 1
# Beat's tick, the task's trip through RabbitMQ and a loaded two-core machine.
MARGIN = timedelta(seconds=2)


def test_reserved_orders_expire_within_one_sweep_of_their_deadline_and_their_stock_returns(
    without_shared_workers, process_factory
):
    # given a worker and a beat with a payment window of a few seconds and a one-second sweep
    settings_env = {
        "ORDER_PAYMENT_TIMEOUT_SECONDS": str(PAYMENT_TIMEOUT_SECONDS),
        "ORDER_EXPIRY_SWEEP_SECONDS": str(SWEEP_SECONDS),
        "OUTBOX_RELAY_SECONDS": "1",
    }
    process_factory.worker(name="expiry", env=settings_env)
    process_factory.beat(env=settings_env)
    customer, _ = user_with_token("unpaid")
    product = make_product("EXPIRES", stock=20)

    # when orders are placed, reserved, and nobody pays
    order_ids = [make_order(customer=customer, lines=[(product, 2)]).pk for _ in range(10)]
    wait_until(
        lambda: not Order.objects.filter(pk__in=order_ids, status=OrderStatus.PENDING).exists(),
        timeout=30,
        message="the orders to be reserved",
    )
    assert OrderEvent.objects.filter(order_id__in=order_ids, to_status=OrderStatus.RESERVED).count() == 10

    # then each expires within one sweep interval of its deadline, and its stock returns
    wait_until(
        lambda: Order.objects.filter(pk__in=order_ids, status=OrderStatus.EXPIRED).count() == 10,
        timeout=PAYMENT_TIMEOUT_SECONDS + 20,
        message="the orders to expire",
    )
    for order in Order.objects.filter(pk__in=order_ids):
        assert order.expires_at is not None and order.reserved_at is not None
        assert order.expires_at - order.reserved_at == timedelta(seconds=PAYMENT_TIMEOUT_SECONDS)
        expired_at = OrderEvent.objects.get(order=order, to_status=OrderStatus.EXPIRED).created_at
        assert order.expires_at <= expired_at <= order.expires_at + timedelta(seconds=SWEEP_SECONDS) + MARGIN
    assert available(product) == 20
    assert_stock_reconciles()
    # and the customer is told (the worker fans the events out to their e-mails)
    wait_until(
        lambda: EmailNotification.objects.filter(event__event_type="order.expired").count() == 10,
        timeout=30,
        message="the expiry e-mails",
    )
