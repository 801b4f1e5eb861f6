"""A shop's history, written in SQL in seconds: for tests that need the planner's real choices.

A query plan depends on the table's size and statistics: over a few rows PostgreSQL reads the
whole table whatever the indexes, so a plan test needs a history of realistic shape. This writes
one: orders spread over a year (five minutes apart, the newest now), of many customers (one of
them heavy, with a tenth of all orders), with a
line and events each, in the proportions a running shop has (most orders final, few pending or
reserved, a few reserved orders past their deadline), then VACUUM ANALYZEs the tables so the
statistics and the visibility map are those of a table autovacuum looks after.

Everything written belongs to users named ``<prefix>-<n>`` and products ``<PREFIX>-*``, and
:func:`history_remove` deletes exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Count, Max
from django.utils import timezone

from inventory.models import Product
from orders.models import Order

# Per mille of orders in each status, in the order of the thresholds below.
STATUS_PER_MILLE = [
    ("pending", 5),
    ("reserved", 15),
    ("paid", 30),
    ("shipped", 50),
    ("rejected", 50),
    ("cancelled", 100),
    ("expired", 150),
    ("refunded", 20),
    ("completed", 580),
]
ORDER_SPACING = timedelta(minutes=5)
# One reserved order in this many is past its payment deadline (the expiry sweep's work).
RESERVED_DUE_ONE_IN = 10
# One order in this many is the heavy customer's (a business buying every day), the others are
# spread over everyone else. The heavy customer hardly ever cancels: of the orders others would
# have cancelled, one in a hundred (a status common in the table and rare for one customer, which
# no single-column index finds quickly).
HEAVY_ONE_IN = 10


@dataclass(frozen=True)
class History:
    prefix: str
    customer_ids: list[int]  # the first is the heavy customer's
    popular_sku: str  # on half of the orders
    rare_sku: str  # on one order in a thousand
    orders: int
    oldest: datetime
    newest: datetime
    most_orders_of_one_customer: int


def _status_case() -> str:
    """SQL: the status of order ``n``, from a hash of n (independent of its customer and time)."""
    branches, threshold = [], 0
    for status, per_mille in STATUS_PER_MILLE:
        threshold += per_mille
        branches.append(f"WHEN abs(hashtext('s' || n)) %% 1000 < {threshold} THEN '{status}'")
    assert threshold == 1000
    return "CASE " + " ".join(branches) + " END"


def history_load(*, orders: int, customers: int, prefix: str = "history") -> History:
    """Write ``orders`` orders of ``customers`` customers; call outside any transaction (it commits)."""
    now = timezone.now()
    oldest = now - ORDER_SPACING * (orders - 1)
    users = User.objects.bulk_create(
        User(username=f"{prefix}-{n}", email=f"{prefix}-{n}@example.com", password="!") for n in range(customers)
    )
    customer_ids = [user.pk for user in users]
    products = Product.objects.bulk_create(
        Product(sku=f"{prefix.upper()}-{n}", name=f"Product {n}", price="10.00", available=0) for n in range(20)
    )
    product_ids = [product.pk for product in products]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO orders_order
                (customer_id, email, status, currency, total, created_at, updated_at, reserved_at, expires_at, paid_at)
            SELECT customer_id, email, status, 'USD', 10.00, created_at, created_at,
                   CASE WHEN status <> 'pending' AND status <> 'rejected' THEN created_at END,
                   CASE WHEN status = 'reserved' AND abs(hashtext('d' || n)) %% {RESERVED_DUE_ONE_IN} = 0
                            THEN %(now)s - interval '1 minute'
                        WHEN status = 'reserved' THEN %(now)s + interval '20 minutes'
                        WHEN status NOT IN ('pending', 'rejected') THEN created_at + interval '30 minutes' END,
                   CASE WHEN status IN ('paid', 'shipped', 'refunded', 'completed') THEN created_at END
            FROM (
                SELECT n,
                       CASE WHEN n %% {HEAVY_ONE_IN} = 0 THEN customers[1]
                            ELSE customers[2 + abs(hashtext('c' || n)) %% (cardinality(customers) - 1)]
                       END AS customer_id,
                       %(oldest)s + (n - 1) * %(spacing)s * interval '1 second' AS created_at,
                       CASE WHEN n %% {HEAVY_ONE_IN} = 0 AND {_status_case()} = 'cancelled'
                                 AND abs(hashtext('x' || n)) %% 100 <> 0 THEN 'completed'
                            ELSE {_status_case()} END AS status
                FROM generate_series(1, %(orders)s) AS n, (SELECT %(customers)s::int[] AS customers) AS c
            ) AS generated
            JOIN auth_user ON auth_user.id = generated.customer_id
            ORDER BY n
            """,
            {
                "now": now,
                "customers": customer_ids,
                "oldest": oldest,
                "spacing": ORDER_SPACING.total_seconds(),
                "orders": orders,
            },
        )
        # The planner has to know the orders are there (it would otherwise loop over them once
        # per product below), and the statements below find them by a hash join on the
        # customers, not by testing each order against the list of a thousand customers.
        cursor.execute("ANALYZE orders_order, inventory_product, auth_user")
        mine = "SELECT o.* FROM orders_order AS o JOIN unnest(%(customers)s::int[]) AS c(id) ON c.id = o.customer_id"
        # One line each: the popular product on every other order, the rare one on one in a
        # thousand, the others in turn.
        cursor.execute(
            f"""
            INSERT INTO orders_orderline (order_id, product_id, sku, name, unit_price, quantity)
            SELECT o.id, product.id, product.sku, product.name, product.price, 1
            FROM ({mine}) AS o
            JOIN inventory_product AS product ON product.id = CASE
                WHEN o.id %% 2 = 0 THEN (%(products)s::bigint[])[1]
                WHEN o.id %% 1000 = 1 THEN (%(products)s::bigint[])[2]
                ELSE (%(products)s::bigint[])[3 + o.id %% 18] END
            """,
            {"products": product_ids, "customers": customer_ids},
        )
        # Its placement, and the transition to where it is now.
        cursor.execute(
            f"""
            INSERT INTO orders_orderevent (order_id, kind, from_status, to_status, actor, reason, data, created_at)
            SELECT o.id, 'transition', '', 'pending', 'customer', '', '{{}}'::jsonb, o.created_at
            FROM ({mine}) AS o
            UNION ALL
            SELECT o.id, 'transition', 'pending', o.status, 'system', '', '{{}}'::jsonb,
                   o.created_at + interval '1 second'
            FROM ({mine}) AS o WHERE o.status <> 'pending'
            """,
            {"customers": customer_ids},
        )
        cursor.execute(
            "VACUUM (ANALYZE) orders_order, orders_orderline, orders_orderevent, auth_user, inventory_product"
        )
    per_customer = (
        Order.objects.filter(customer_id__in=customer_ids)
        .values("customer_id")
        .order_by()
        .annotate(n=Count("id"))
        .aggregate(most=Max("n"))["most"]
    )
    return History(
        prefix=prefix,
        customer_ids=customer_ids,
        popular_sku=products[0].sku,
        rare_sku=products[1].sku,
        orders=orders,
        oldest=oldest,
        newest=now,
        most_orders_of_one_customer=per_customer,
    )


def history_remove(history: History) -> None:
    """Delete what :func:`history_load` wrote; call outside any transaction."""
    with connection.cursor() as cursor:
        params = {"customers": history.customer_ids}
        mine = "SELECT o.id FROM orders_order AS o JOIN unnest(%(customers)s::int[]) AS c(id) ON c.id = o.customer_id"
        cursor.execute(f"DELETE FROM orders_orderevent WHERE order_id IN ({mine})", params)
        cursor.execute(f"DELETE FROM orders_orderline WHERE order_id IN ({mine})", params)
        cursor.execute(f"DELETE FROM orders_order WHERE id IN ({mine})", params)
    User.objects.filter(pk__in=history.customer_ids).delete()
    Product.objects.filter(sku__startswith=f"{history.prefix.upper()}-").delete()
