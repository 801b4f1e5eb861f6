"""The scheduled stock reconciliation and the drift metric it feeds."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from inventory.models import Product
from inventory.reconciliation import stock_reconcile
from orders.models import OrderStatus
from tests.factories import bulk_orders, make_product
from tests.flows.support import user_with_token
from tests.metrics import sample

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_kept_result():
    cache.clear()
    yield
    cache.clear()


def drift_metrics(client) -> tuple[float | None, float | None]:
    text = client.get("/metrics").content.decode()
    return (
        sample(text, "orderservice_stock_ledger_drift_products"),
        sample(text, "orderservice_stock_ledger_checked_timestamp_seconds"),
    )


def test_a_balanced_ledger_exports_no_drift(client):
    make_product("BAL-1", stock=5)

    result = stock_reconcile()

    assert (result.products, result.drifted) == (1, 0)
    drift, checked = drift_metrics(client)
    assert drift == 0
    assert checked == pytest.approx(result.checked_at)


def test_stock_changed_outside_the_ledger_is_exported_as_drift_and_logged(client, caplog):
    # given a product whose stock was changed without a ledger row
    make_product("DRIFT-1", stock=5)
    make_product("DRIFT-2", stock=5)
    Product.objects.filter(sku="DRIFT-2").update(available=4)

    result = stock_reconcile()

    assert result.drifted == 1
    assert drift_metrics(client)[0] == 1
    assert "DRIFT-2 has 4 available, its ledger says 5 (difference -1)" in caplog.text


def test_no_recent_result_exports_no_sample_rather_than_zero(client):
    assert drift_metrics(client) == (None, None)


def test_beat_runs_the_reconciliation_on_the_orders_queue():
    entry = settings.CELERY_BEAT_SCHEDULE["stock-reconcile"]

    assert entry["task"] == "inventory.tasks.stock_reconcile_task"
    assert entry["options"]["queue"] == "orders"  # never in the way of a reservation


def test_a_reserved_order_long_past_its_deadline_is_exported(client):
    # given a reserved order 10 minutes past its deadline (no expiry sweep ran), and one not yet due
    customer, _ = user_with_token("overdue")
    product = make_product("OVERDUE-1", stock=5)
    now = timezone.now()
    bulk_orders(customer=customer, product=product, count=1, quantity=1, status=OrderStatus.RESERVED,
                reserved_at=now - timedelta(minutes=40), expires_at=now - timedelta(minutes=10))  # fmt: skip
    bulk_orders(customer=customer, product=product, count=1, quantity=1, status=OrderStatus.RESERVED,
                reserved_at=now, expires_at=now + timedelta(minutes=30))  # fmt: skip

    overdue = sample(client.get("/metrics").content.decode(), "orderservice_most_overdue_reserved_order_seconds")

    assert overdue is not None and 590 <= overdue <= 700


def test_no_overdue_reserved_order_exports_zero(client):
    customer, _ = user_with_token("on-time")
    product = make_product("ONTIME-1", stock=5)
    now = timezone.now()
    bulk_orders(customer=customer, product=product, count=1, quantity=1, status=OrderStatus.RESERVED,
                reserved_at=now, expires_at=now + timedelta(minutes=30))  # fmt: skip

    assert sample(client.get("/metrics").content.decode(), "orderservice_most_overdue_reserved_order_seconds") == 0
