"""Bounded counts: exact up to their limit, PostgreSQL's estimate above it (core/counting.py)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.counting import CountAtLeast, RowCount, count_at_most, count_bounded
from orders.models import Order
from tests.factories import UserFactory, bulk_orders, make_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def five_orders() -> None:
    bulk_orders(customer=UserFactory.create(), product=make_product(stock=100), count=5, quantity=1)


def test_up_to_the_limit_the_count_is_exact(five_orders):
    newest_first = Order.objects.order_by("-created_at", "-id")

    assert count_at_most(newest_first, limit=5) == 5
    assert type(count_at_most(newest_first, limit=5)) is int
    assert count_bounded(newest_first, limit=5) == RowCount(5, exact=True)
    assert str(count_bounded(newest_first, limit=5)) == "5"


def test_above_the_limit_the_count_stops_there_and_says_so(five_orders):
    newest_first = Order.objects.order_by("-created_at", "-id")

    with CaptureQueriesContext(connection) as captured:
        counted = count_at_most(newest_first, limit=3)

    assert isinstance(counted, CountAtLeast)
    assert counted == 3 and str(counted) == "3+"
    assert "LIMIT 4" in captured.captured_queries[0]["sql"]  # at most one row more than the limit is read


def test_above_the_limit_the_figure_is_the_planners_estimate(five_orders):
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_order")

    figure = count_bounded(Order.objects.order_by("-created_at", "-id"), limit=3)

    assert not figure.exact
    assert figure.value >= 4
    assert str(figure) == f"about {figure.value:,}"
