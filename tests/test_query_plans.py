"""Every read on a request path reads the orders through an index, about a page at a time, however
many orders the shop has (invariant 11).

Over a few rows PostgreSQL reads whole tables whatever the indexes, so the plans are taken over
a year of history written in SQL (tests/history.py: 100,000 orders of 1,000 customers, one of
them with a tenth of the orders, with their lines and events, statuses in a running shop's
proportions, VACUUM ANALYZEd). Each case makes the real request (the API as the heavy customer
and as staff, with every filter alone and combined, a deep cursor; the admin's lists, searches and
dashboard; ``/metrics``; the expiry sweep), captures every statement it sends, and runs
``EXPLAIN ANALYZE`` on those that read orders, their lines or events. A case fails on a
sequential scan of the orders, and on a plan that reads (returns, or reads and filters away) more
rows of those tables than its bound: a few pages for the API, the count limit for the admin. A
plan that walks an index not made for its filter reads thousands of rows here and fails, as
``test_the_check_fails_without_the_index_behind_a_filter`` shows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from core.counting import COUNT_LIMIT
from core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from orders.models import Order, OrderStatus
from orders.services.expiry import EXPIRY_BATCH_SIZE, order_expire_batch
from tests.admin_pages import forget_operations_readings
from tests.factories import OperatorFactory, StaffFactory, token_for
from tests.history import History, history_load, history_remove

pytestmark = pytest.mark.django_db

ORDERS = 100_000
CUSTOMERS = 1_000
BIG_TABLES = ("orders_order", "orders_orderline", "orders_orderevent")


@pytest.fixture(scope="module")
def history(django_db_setup: None, django_db_blocker: Any) -> Iterator[History]:
    with django_db_blocker.unblock():
        loaded = history_load(orders=ORDERS, customers=CUSTOMERS, prefix="plans")
        try:
            yield loaded
        finally:
            history_remove(loaded)


# --- reading plans ---------------------------------------------------------------------------


def _outline(node: dict[str, Any], depth: int = 0) -> str:
    """A plan as a few readable lines: each node, what it reads, its rows."""
    what = " ".join(str(node[key]) for key in ("Relation Name", "Index Name") if key in node)
    rows = f"{node.get('Actual Rows', 0)} rows x {node.get('Actual Loops', 1)}"
    removed = node.get("Rows Removed by Filter", 0)
    line = f"{'  ' * depth}{node['Node Type']} {what} ({rows}{f', {removed} filtered away' if removed else ''})"
    return "\n".join([line, *(_outline(child, depth + 1) for child in node.get("Plans", []))])


@dataclass
class PlanReport:
    tables: tuple[str, ...] = BIG_TABLES
    statements: int = 0
    sequential_scans: list[str] = field(default_factory=list)
    most_rows_read: int = 0
    worst: str = ""

    def problems(self, bound: int) -> list[str]:
        found = [f"sequential scan of {self.tables[0]}:\n{plan}" for plan in self.sequential_scans]
        if self.most_rows_read > bound:
            found.append(f"{self.most_rows_read} rows of {'/'.join(self.tables)} read (bound {bound}):\n{self.worst}")
        return found


def _rows_read(node: dict[str, Any], tables: tuple[str, ...] = BIG_TABLES) -> int:
    """Rows of the big tables a plan node returned or read and threw away, over all its loops."""
    read = 0
    if node.get("Relation Name") in tables:
        per_loop = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
        per_loop += node.get("Rows Removed by Index Recheck", 0)
        read += per_loop * node.get("Actual Loops", 1)
    return read + sum(_rows_read(child, tables) for child in node.get("Plans", []))


def _sequential_scans(node: dict[str, Any], table: str = "orders_order") -> bool:
    if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") == table:
        return True
    return any(_sequential_scans(child, table) for child in node.get("Plans", []))


def plans_of(statements: list[str], tables: tuple[str, ...] = BIG_TABLES) -> PlanReport:
    """EXPLAIN ANALYZE each SELECT of ``statements`` that reads one of ``tables`` (in a savepoint
    rolled back after, as a SELECT ... FOR UPDATE takes locks); a sequential scan of the first of
    them is a problem."""
    report = PlanReport(tables=tables)
    for sql in statements:
        if not sql.lstrip().upper().startswith("SELECT") or not any(f'"{t}"' in sql for t in tables):
            continue
        report.statements += 1
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
            (plan,) = cursor.fetchone()
            transaction.set_rollback(True)
        root = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
        if _sequential_scans(root, tables[0]):
            report.sequential_scans.append(f"{sql}\n{_outline(root)}")
        rows = _rows_read(root, tables)
        if rows > report.most_rows_read:
            report.most_rows_read, report.worst = rows, f"{sql}\n{_outline(root)}"
    return report


def statements_of(action: Callable[[], Any]) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        action()
    return [query["sql"] for query in captured.captured_queries]


def get_ok(client: Client | APIClient, url: str) -> Callable[[], Any]:
    def get() -> Any:
        response = client.get(url)
        assert response.status_code == 200, (url, response.content[:500])
        return response

    return get


def assert_bounded(report: PlanReport, bound: int, *, reads: bool = True) -> None:
    assert report.statements > 0 or not reads, "no statement read the orders"
    problems = report.problems(bound)
    assert not problems, "\n".join(problems)


# --- the cases -------------------------------------------------------------------------------


def _cursor_at(history: History, fraction: float) -> str:
    """A cursor positioned ``fraction`` of the way from the newest order to the oldest: a page as
    deep as a client following ``next`` links would reach."""
    position = history.newest - (history.newest - history.oldest) * fraction
    return quote(base64.b64encode(urlencode({"p": str(position)}).encode()).decode())


def _at(history: History, fraction: float) -> str:
    return quote((history.oldest + (history.newest - history.oldest) * fraction).isoformat())


# Every filter alone and combined, as a customer and as staff (``{...}`` filled in by api_query).
LIST_CASES = {
    "newest": "",
    "rare status": "status=pending",
    "common status": "status=completed",
    "created after": "created_after={half}",
    "created before": "created_before={half}",
    "window": "created_after={third}&created_before={two_thirds}",
    "rare status in a window": "status=paid&created_after={third}&created_before={two_thirds}",
    "largest page": f"page_size={MAX_PAGE_SIZE}",
    "deep cursor": "cursor={deep}",
    "deep cursor, rare status": "status=pending&cursor={deep}",
}
CUSTOMER_CASES = LIST_CASES | {"a status rare for this customer": "status=cancelled"}
STAFF_CASES = LIST_CASES | {
    "email": "email={email}",
    "email and status": "email={email}&status=completed",
    "email and a status rare for it": "email={email}&status=cancelled",
    "email in a window": "email={email}&created_after={third}&created_before={two_thirds}",
}


def api_query(history: History, template: str) -> str:
    return template.format(
        half=_at(history, 0.5),
        third=_at(history, 0.3),
        two_thirds=_at(history, 0.6),
        deep=_cursor_at(history, 0.95),
        email=quote(f"{history.prefix}-0@EXAMPLE.com"),  # the heavy customer's, in any case
    )


def api_bound(history: History) -> int:
    """Ten pages: for a filter that matches a tenth of the orders (the heavy customer's) the
    planner may walk the creation-time index and skip the others' orders, about ten rows read for
    one shown, as many at any size of the table. A filter without an index of its own reads all
    of a customer's orders, or thousands of a rare status's here, and fails."""
    bound = 10 * (MAX_PAGE_SIZE + 1)
    assert history.most_orders_of_one_customer > 5 * bound  # the bound tells a page from a history
    return bound


def api_client_for(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


@pytest.mark.parametrize("case", STAFF_CASES)
def test_staff_order_lists_read_a_page_from_an_index(history: History, case: str):
    query = api_query(history, STAFF_CASES[case])

    report = plans_of(statements_of(get_ok(api_client_for(StaffFactory()), f"/api/v1/orders/?{query}")))

    assert_bounded(report, api_bound(history))


@pytest.mark.parametrize("case", CUSTOMER_CASES)
def test_customer_order_lists_read_a_page_from_an_index(history: History, case: str):
    customer = User.objects.get(pk=history.customer_ids[0])  # the heavy one
    query = api_query(history, CUSTOMER_CASES[case])

    report = plans_of(statements_of(get_ok(api_client_for(customer), f"/api/v1/orders/?{query}")))

    assert_bounded(report, api_bound(history))


def test_an_orders_events_are_read_from_its_index(history: History):
    order = Order.objects.filter(customer_id=history.customer_ids[3]).order_by("-pk").first()
    assert order is not None

    report = plans_of(statements_of(get_ok(api_client_for(order.customer), f"/api/v1/orders/{order.pk}/events/")))

    assert_bounded(report, DEFAULT_PAGE_SIZE + 1)


ADMIN_CASES = {
    "order list": "",
    "rare status": "status__exact=pending",
    "common status": "status__exact=completed",
    "this month": "created_at__gte={month}&created_at__lt={next_month}",
    "status this month": "status__exact=paid&created_at__gte={month}&created_at__lt={next_month}",
    "sorted oldest first": "o=6",
    "page 100": "p=100",
    "search an order number": "q={order_id}",
    "search an e-mail address": "q={email}",
    "search a popular SKU": "q={popular_sku}",
    "search a rare SKU": "q={rare_sku}",
    "search something unknown": "q=no-such-thing",  # answered without a query
}


@pytest.mark.parametrize("case", ADMIN_CASES)
def test_admin_order_lists_count_and_page_from_indexes(history: History, admin_client: Client, case: str):
    month = history.newest.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    query = ADMIN_CASES[case].format(
        month=quote(month.isoformat()),
        next_month=quote((month + timedelta(days=32)).replace(day=1).isoformat()),
        order_id=Order.objects.filter(customer_id=history.customer_ids[0]).values_list("pk", flat=True).first(),
        email=quote(f"{history.prefix}-5@example.com"),
        popular_sku=history.popular_sku,
        rare_sku=history.rare_sku,
    )

    report = plans_of(statements_of(get_ok(admin_client, f"/admin/orders/order/?{query}")))

    # the count reads at most its limit of rows (of the orders, and of their lines for a SKU:
    # each line, its order, and the one it skips past), a page at most the rows it skips and shows
    assert_bounded(report, 3 * (COUNT_LIMIT + 1) + 100 * 50, reads=case != "search something unknown")


def test_the_dashboard_and_the_gauges_read_at_most_the_count_limit_per_figure(history: History, admin_client: Client):
    forget_operations_readings()
    dashboard = plans_of(statements_of(get_ok(admin_client, "/admin/")))
    forget_operations_readings()
    gauges = plans_of(statements_of(get_ok(Client(), "/metrics")))

    assert_bounded(dashboard, COUNT_LIMIT + 1)
    assert_bounded(gauges, COUNT_LIMIT + 1)


def test_the_expiry_sweep_reads_only_the_orders_due(history: History):
    due = Order.objects.filter(status=OrderStatus.RESERVED, expires_at__lte=history.newest).count()
    assert 0 < due < EXPIRY_BATCH_SIZE < Order.objects.filter(status=OrderStatus.RESERVED).count()

    # one batch of the sweep, undone after, so that its plans are read over the orders still due
    before_the_sweep = transaction.savepoint()
    statements = statements_of(order_expire_batch)
    transaction.savepoint_rollback(before_the_sweep)

    report = plans_of(statements)

    assert_bounded(report, EXPIRY_BATCH_SIZE * 2)


def test_the_check_fails_without_the_index_behind_a_filter(history: History):
    # given the (status, created_at, id) index gone (in this test's transaction only)
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX order_status_recent_idx")
    query = api_query(history, STAFF_CASES["rare status"])

    # when staff list the pending orders
    report = plans_of(statements_of(get_ok(api_client_for(StaffFactory()), f"/api/v1/orders/?{query}")))

    # then the plan reads through the table (or scans it) to find them, and the check says so
    assert report.problems(api_bound(history))


# --- merchant webhook deliveries ----------------------------------------------------------------

DELIVERIES = 60_000
DELIVERY_TABLES = ("notifications_webhookdelivery",)


@dataclass(frozen=True)
class DeliveryHistory:
    busy_endpoint: int  # a tenth of the deliveries
    quiet_endpoint: int


@pytest.fixture(scope="module")
def delivery_history(django_db_setup: None, django_db_blocker: Any) -> Iterator[DeliveryHistory]:
    """60,000 deliveries of as many events to 20 endpoints, one of them with a tenth of them;
    succeeded mostly, some failed, dead-lettered or pending, over a month; VACUUM ANALYZEd."""
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO notifications_webhookendpoint
                    (url, events, active, secret, created_at, circuit_state, consecutive_failures,
                     circuit_openings, previous_secret)
                SELECT 'https://plans-' || n || '.example.com/hooks', ARRAY['order.paid'], true, 'whsec_x',
                       now(), 'closed', 0, 0, ''
                FROM generate_series(1, 20) AS n RETURNING id
                """
            )
            endpoints = sorted(row[0] for row in cursor.fetchall())
            cursor.execute(
                """
                INSERT INTO notifications_notificationevent (id, event_type, payload, created_at)
                SELECT md5('plans' || n)::uuid, 'order.paid', '{}'::jsonb, now() - n * interval '40 seconds'
                FROM generate_series(1, %(count)s) AS n
                """,
                {"count": DELIVERIES},
            )
            cursor.execute(
                """
                INSERT INTO notifications_webhookdelivery
                    (event_id, endpoint_id, status, attempt_count, last_error, created_at, updated_at)
                SELECT md5('plans' || n)::uuid,
                       CASE WHEN n %% 10 = 1 THEN %(busy)s ELSE (%(endpoints)s::bigint[])[1 + n %% 19 + 1] END,
                       CASE WHEN n %% 100 = 1 THEN 'failed' WHEN n %% 100 = 2 THEN 'dead_lettered'
                            WHEN n %% 100 = 3 THEN 'pending' ELSE 'succeeded' END,
                       1, '', now() - n * interval '40 seconds', now()
                FROM generate_series(1, %(count)s) AS n
                """,
                {"count": DELIVERIES, "busy": endpoints[0], "endpoints": endpoints},
            )
            cursor.execute("ANALYZE notifications_webhookdelivery")
            cursor.execute("ANALYZE notifications_notificationevent")
            cursor.execute("ANALYZE notifications_webhookendpoint")
        try:
            yield DeliveryHistory(busy_endpoint=endpoints[0], quiet_endpoint=endpoints[1])
        finally:
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM notifications_webhookdelivery")
                cursor.execute("DELETE FROM notifications_notificationevent")
                cursor.execute("DELETE FROM notifications_webhookendpoint")


DELIVERY_CASES = {
    "newest": "",
    "rare status": "status=dead_lettered",
    "common status": "status=succeeded",
    "busy endpoint": "endpoint={busy}",
    "quiet endpoint": "endpoint={quiet}",
    "endpoint and rare status": "endpoint={busy}&status=failed",
    "quiet endpoint and rare status": "endpoint={quiet}&status=dead_lettered",
    "largest page": f"page_size={MAX_PAGE_SIZE}",
}


@pytest.mark.parametrize("case", DELIVERY_CASES)
def test_delivery_lists_read_a_page_from_an_index(delivery_history: DeliveryHistory, case: str):
    query = DELIVERY_CASES[case].format(busy=delivery_history.busy_endpoint, quiet=delivery_history.quiet_endpoint)
    client = api_client_for(OperatorFactory())
    first = get_ok(client, f"/api/v1/webhooks/deliveries/?{query}")().json()
    assert first["results"], "the case shows some deliveries"

    # the first page, and the one its next link leads to
    report = plans_of(statements_of(get_ok(client, f"/api/v1/webhooks/deliveries/?{query}")), DELIVERY_TABLES)
    assert_bounded(report, 10 * (MAX_PAGE_SIZE + 1))
    if first["next"]:
        deeper = plans_of(statements_of(get_ok(client, first["next"])), DELIVERY_TABLES)
        assert_bounded(deeper, 10 * (MAX_PAGE_SIZE + 1))


def test_the_delivery_check_fails_without_the_index_behind_a_filter(delivery_history: DeliveryHistory):
    # given the (endpoint, status, created_at) and (status, created_at) indexes gone (in this
    # test's transaction only), leaving the endpoint's own
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX webhook_delivery_ep_status_idx")
        cursor.execute("DROP INDEX webhook_delivery_status_idx")
    query = DELIVERY_CASES["quiet endpoint and rare status"].format(quiet=delivery_history.quiet_endpoint)

    report = plans_of(
        statements_of(get_ok(api_client_for(OperatorFactory()), f"/api/v1/webhooks/deliveries/?{query}")),
        DELIVERY_TABLES,
    )

    assert report.problems(10 * (MAX_PAGE_SIZE + 1))
