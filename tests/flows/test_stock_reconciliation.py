"""Beat's stock reconciliation runs in a real worker and its result reaches /metrics."""

import pytest
from django.conf import settings
from django.core.cache import cache

from config.celery_app import app
from inventory.models import Product
from tests.factories import make_product
from tests.metrics import sample
from tests.processes import wait_until

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]


def test_the_scheduled_reconciliation_runs_in_a_worker_and_exports_the_drift(live_worker, client):
    # given a product whose stock drifted from its ledger
    cache.clear()
    make_product("FLOW-DRIFT", stock=3)
    Product.objects.filter(sku="FLOW-DRIFT").update(available=7)

    # when beat's entry is sent as beat sends it (task name, queue), to the running worker
    entry = settings.CELERY_BEAT_SCHEDULE["stock-reconcile"]
    app.send_task(entry["task"], **entry["options"])

    # then the worker's result shows in the web process's metrics
    def drift() -> float | None:
        return sample(client.get("/metrics").content.decode(), "orderservice_stock_ledger_drift_products")

    assert wait_until(lambda: drift() is not None, timeout=60, message="the reconciliation result") is True
    assert drift() == 1
