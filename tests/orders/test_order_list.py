"""``GET /api/v1/orders/``: newest first, a cursor page at a time, with the contract's filters.

How each list query is served (an index, never a scan of the orders) is tested in
tests/test_query_plans.py; these test what the answers hold.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from orders.models import Order, OrderStatus
from tests.factories import StaffFactory, UserFactory, bulk_orders, make_product

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def orders_at(customer, *times: datetime, status: str = OrderStatus.PENDING, email: str | None = None) -> list[int]:
    product = make_product(stock=1000)
    made = []
    for at in times:
        extra: dict[str, Any] = {"created_at": at, "status": status}
        [order] = bulk_orders(customer=customer, product=product, count=1, quantity=1, **extra)
        if email is not None:
            Order.objects.filter(pk=order.pk).update(email=email)
        made.append(order.pk)
    return made


def every_page(client, url: str) -> list[list[int]]:
    """The ids of each page, following ``next`` from ``url`` to the end."""
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"next", "previous", "results"}  # nothing counted
        pages.append([order["id"] for order in body["results"]])
        url = body["next"]
    return pages


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [order["id"] for order in response.json()["results"]]


def test_pages_follow_each_other_newest_first_without_gaps_or_repeats(customer, client_for):
    # given 7 orders, three of them created in the same microsecond
    times = [T0 + timedelta(minutes=i) for i in range(4)] + [T0 + timedelta(hours=1)] * 3
    made = orders_at(customer, *times)
    newest_first = sorted(made, key=lambda pk: (times[made.index(pk)], pk), reverse=True)

    # when they are read 2 at a time
    pages = every_page(client_for(customer), "/api/v1/orders/?page_size=2")

    # then every order comes once, newest first (the id orders those created together)
    assert [len(page) for page in pages] == [2, 2, 2, 1]
    assert [pk for page in pages for pk in page] == newest_first


def test_previous_leads_back_to_the_page_before(customer, client_for):
    orders_at(customer, *(T0 + timedelta(minutes=i) for i in range(5)))
    client = client_for(customer)
    first = client.get("/api/v1/orders/?page_size=2").json()
    second = client.get(first["next"]).json()

    back = client.get(second["previous"]).json()

    assert first["previous"] is None
    assert [o["id"] for o in back["results"]] == [o["id"] for o in first["results"]]


def test_page_size_defaults_to_50_and_is_capped_at_100(staff, client_for):
    product = make_product(stock=1000)
    bulk_orders(customer=UserFactory(), product=product, count=120, quantity=1)
    client = client_for(staff)

    assert len(ids(client.get("/api/v1/orders/"))) == 50
    assert len(ids(client.get("/api/v1/orders/?page_size=1000"))) == 100
    assert len(ids(client.get("/api/v1/orders/?page_size=7"))) == 7


def test_status_and_creation_time_filters_combine(customer, client_for):
    # given orders of two statuses at three times
    early, middle, late = T0, T0 + timedelta(days=1), T0 + timedelta(days=2)
    pending = orders_at(customer, early, middle, late)
    paid = orders_at(customer, early, middle, late, status=OrderStatus.PAID)
    client = client_for(customer)
    window = f"created_after={middle.isoformat()}&created_before={late.isoformat()}".replace("+", "%2B")

    # then created_after includes its time, created_before excludes its own, and filters combine
    assert ids(client.get("/api/v1/orders/?status=paid")) == paid[::-1]
    assert ids(client.get(f"/api/v1/orders/?{window}")) == [paid[1], pending[1]]
    assert ids(client.get(f"/api/v1/orders/?status=pending&{window}")) == [pending[1]]
    assert ids(client.get("/api/v1/orders/?created_before=2026-03-02")) == [
        paid[0],
        pending[0],
    ]  # a date is its midnight, UTC
    assert ids(client.get("/api/v1/orders/?status=&created_after=")) == ids(client.get("/api/v1/orders/"))


def test_staff_filter_by_email_in_any_case_and_customers_may_not(customer, staff, client_for):
    # given orders placed with two addresses, by two customers
    mine = orders_at(customer, T0, T0 + timedelta(hours=1), email="Ann.Buyer@Example.com")
    orders_at(UserFactory(), T0, email="someone@example.com")
    paid = orders_at(customer, T0 + timedelta(hours=2), status=OrderStatus.PAID, email="ann.buyer@example.com")

    # then staff find them by address whatever its case, with the other filters too
    assert ids(client_for(staff).get("/api/v1/orders/?email=ANN.BUYER@example.COM")) == [paid[0], *mine[::-1]]
    assert ids(client_for(staff).get("/api/v1/orders/?email=ann.buyer@example.com&status=paid")) == paid
    # and a customer asking by address is told it is not theirs to use, not answered another list
    refused = client_for(customer).get("/api/v1/orders/?email=someone@example.com")
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["attr"] == "email"


def test_customers_see_only_their_own_orders_whatever_the_filters(customer, client_for):
    mine = orders_at(customer, T0, status=OrderStatus.PAID)
    orders_at(UserFactory(), T0, T0 + timedelta(hours=1), status=OrderStatus.PAID)

    assert ids(client_for(customer).get("/api/v1/orders/?status=paid&created_after=2026-01-01")) == mine


def _cursor(**tokens: str) -> str:
    return base64.b64encode("&".join(f"{k}={v}" for k, v in tokens.items()).encode()).decode()


@pytest.mark.parametrize(
    ("query", "attr"),
    [
        ("status=nonsense", "status"),
        ("created_after=yesterday", "created_after"),
        ("created_before=2026-02-30T00:00:00Z", "created_before"),
        ("created_after=99999-01-01", "created_after"),
        ("created_after=2026-03-02&created_before=2026-03-01", "created_before"),
        ("email=not-an-address", "email"),
        ("status=%00", "status"),
        ("page_size=0", "page_size"),
        ("page_size=-5", "page_size"),
        ("page_size=lots", "page_size"),
        ("cursor=%%%not-base64", "cursor"),
        (f"cursor={_cursor(p='not-a-time')}", "cursor"),
        (f"cursor={_cursor(p='2026-03-01 12:00:00+00:00', o='x')}", "cursor"),
    ],
)
def test_bad_parameters_are_400_with_the_field_named(staff, client_for, query: str, attr: str):
    response = client_for(staff).get(f"/api/v1/orders/?{query}")

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["type"] == "validation_error"
    assert [error["attr"] for error in body["errors"]] == [attr]


def test_a_cursor_made_by_the_api_carries_only_a_position(customer, client_for):
    orders_at(customer, T0, T0 + timedelta(minutes=1))
    next_link = client_for(customer).get("/api/v1/orders/?page_size=1").json()["next"]

    cursor = parse_qs(urlsplit(next_link).query)["cursor"][0]

    assert parse_qs(base64.b64decode(cursor).decode()) == {"p": [str(T0 + timedelta(minutes=1))]}


def test_staff_see_every_customers_orders(client_for):
    a = orders_at(UserFactory(), T0)
    b = orders_at(UserFactory(), T0 + timedelta(minutes=1))

    assert ids(client_for(StaffFactory()).get("/api/v1/orders/")) == [*b, *a]
