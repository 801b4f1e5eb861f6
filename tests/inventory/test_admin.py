"""Products in the admin: list and page stay cheap whatever the stock history."""

from __future__ import annotations

import pytest

from inventory.services import stock_adjust
from tests.admin_pages import queries_for
from tests.factories import StaffFactory, make_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client):
    client.force_login(StaffFactory(is_superuser=True))
    return client


def test_the_product_list_costs_the_same_queries_for_3_or_30_products(admin_client_):
    for _ in range(3):
        make_product()
    few = queries_for(admin_client_, "/admin/inventory/product/")
    for _ in range(27):
        make_product()

    assert queries_for(admin_client_, "/admin/inventory/product/") == few


def test_the_product_page_costs_the_same_queries_for_1_or_40_ledger_rows(admin_client_):
    quiet, busy = make_product(stock=100), make_product(stock=100)
    for n in range(39):
        stock_adjust(product=busy, delta=1, reason=f"count {n}")
    queries_for(admin_client_, f"/admin/inventory/product/{quiet.pk}/change/")  # warm per-process caches

    assert queries_for(admin_client_, f"/admin/inventory/product/{busy.pk}/change/") == queries_for(
        admin_client_, f"/admin/inventory/product/{quiet.pk}/change/"
    )


def test_the_ledger_list_costs_the_same_queries_for_few_or_many_rows(admin_client_):
    product = make_product(stock=100)
    few = queries_for(admin_client_, "/admin/inventory/stockledgerentry/")
    for n in range(20):
        stock_adjust(product=make_product() if n % 2 else product, delta=1, reason="recount")

    assert queries_for(admin_client_, "/admin/inventory/stockledgerentry/") == few
