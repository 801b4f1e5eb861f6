"""The scheduled stock reconciliation and the drift metric it feeds."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import CommandError, call_command
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


def test_reconcile_stock_json_says_every_product_matches(capsys):
    make_product(sku="JSON-A", stock=5)
    make_product(sku="JSON-B", stock=7)

    call_command("reconcile_stock", json=True)

    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True
    assert (result["products_checked"], result["products_drifted"], result["discrepancies"]) == (2, 0, [])
    assert result["checked_at"]


def test_reconcile_stock_json_names_each_drifted_product_and_still_fails():
    # given stock changed outside the ledger
    make_product(sku="JSON-OK", stock=5)
    drifted = make_product(sku="JSON-DRIFT", stock=5)
    Product.objects.filter(pk=drifted.pk).update(available=3)
    out = StringIO()

    # when it is checked as JSON
    with pytest.raises(CommandError, match="1 of 2 product"):
        call_command("reconcile_stock", json=True, stdout=out)

    # then the JSON names the product and its difference, and the exit status is a failure
    result = json.loads(out.getvalue())
    assert result["ok"] is False
    assert result["discrepancies"] == [{"sku": "JSON-DRIFT", "available": 3, "ledger_total": 5, "difference": -2}]
