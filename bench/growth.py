"""Benchmark: what history costs. Every read endpoint, and the expiry sweep, on a database that
grows from (almost) empty to millions of orders, each figure next to its value on the empty one.

Part of ``python -m bench`` (``--only growth``, see bench/__main__.py); on its own:

    python -m bench.growth [--sizes 1000000,10000000] [--duration 10] [--runs 1]

The orders are generated in SQL, in batches, on the benchmark's database (``orders_bench``,
recreated): customers (one of them heavy, with a tenth of all orders), lines, the events of each
order's path through the state table, a mix of statuses as a shop's history has them (a tenth of
them reserved, waiting for payment, none of those due). For each size, served by gunicorn under
production settings and loaded by wrk over 16 connections: the customer's list, one order and its
events (the heavy customer's), staff's list and staff's list by status, the admin's order list
(plain, searched by e-mail, filtered by status), the admin's operations dashboard; then the expiry
sweep with 1,000 due orders among all those reserved. Before measuring, each endpoint's queries
are run once in this process and explained (``EXPLAIN ANALYZE``): the report names every
sequential scan and every ``COUNT``. The database is recreated empty at the end (``--keep`` keeps
the data).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from bench import system
from bench.load import LoadResult, run_wrk

CONNECTIONS = 16
# Orders per loading transaction: large enough for set-based speed, small enough that the WAL of
# one batch stays a fraction of the server's max_wal_size and progress shows every few seconds.
BATCH = 250_000
PRODUCTS = 1_000
# One customer in this many orders is the heavy one; the others share the rest, ~50 orders each.
HEAVY_EVERY = 10
ORDERS_PER_CUSTOMER = 50
# The "empty" database: a full page for every list measured (the admin's 50 paid orders are the
# scarcest: paid is 2 % of the mix), and nothing more. Compared with a page of a few rows, a
# grown database would be measured against a smaller page, not against less history.
EMPTY_ORDERS = 5_000
# The heavy customer's orders are the first ones too, so it has a page on the empty database.
HEAVY_FIRST = 200
# Orders the sweep finds due in every run, as in the issue: a thousand due among all reserved.
DUE_ORDERS = 1_000
# The history's mix of statuses in basis points (of 10,000); completed is the rest.
STATUS_MIX = (
    ("pending", 5),
    ("reserved", 1_000),
    ("rejected", 400),
    ("cancelled", 700),
    ("expired", 1_100),
    ("paid", 200),
    ("shipped", 300),
    ("refunded", 200),
)
# Each status's path through the state table: (step, from, to, actor).
PATHS = {
    "pending": [(1, "", "pending", "customer")],
    "reserved": [(1, "", "pending", "customer"), (2, "pending", "reserved", "system")],
    "rejected": [(1, "", "pending", "customer"), (2, "pending", "rejected", "system")],
    "cancelled": [(1, "", "pending", "customer"), (2, "pending", "reserved", "system"),
                  (3, "reserved", "cancelled", "customer")],
    "expired": [(1, "", "pending", "customer"), (2, "pending", "reserved", "system"),
                (3, "reserved", "expired", "system")],
    "paid": [(1, "", "pending", "customer"), (2, "pending", "reserved", "system"),
             (3, "reserved", "paid", "payment_provider")],
    "shipped": [(1, "", "pending", "customer"), (2, "pending", "reserved", "system"),
                (3, "reserved", "paid", "payment_provider"), (4, "paid", "shipped", "staff")],
    "completed": [(1, "", "pending", "customer"), (2, "pending", "reserved", "system"),
                  (3, "reserved", "paid", "payment_provider"), (4, "paid", "shipped", "staff"),
                  (5, "shipped", "completed", "staff")],
    "refunded": [(1, "", "pending", "customer"), (2, "pending", "reserved", "system"),
                 (3, "reserved", "paid", "payment_provider"), (4, "paid", "refunded", "staff")],
}  # fmt: skip
# The history spans two years, the newest order placed about now.
HISTORY = timedelta(days=730)
GROWING_TABLES = ("orders_order", "orders_orderline", "orders_orderevent", "auth_user")


def log(message: str) -> None:
    print(f"[growth] {message}", flush=True)


# --- generating the data, in SQL -----------------------------------------------------------------


def _status_case() -> str:
    """SQL for an order's status from its bucket ``b`` (0-9999)."""
    branches, upper = [], 0
    for status, share in STATUS_MIX:
        upper += share
        branches.append(f"WHEN b < {upper} THEN '{status}'")
    return f"CASE {' '.join(branches)} ELSE 'completed' END"


_PATHS_VALUES = ", ".join(
    f"('{status}', {step}, '{source}', '{target}', '{actor}')"
    for status, steps in PATHS.items()
    for step, source, target, actor in steps
)

# One batch of orders [%(first)s, %(last)s]: their attributes in a temporary table, their lines in
# another (so an order's total is the sum of its lines), then the three inserts; one statement at
# a time, in one transaction. Ids are explicit and increasing, and so are the creation times:
# newer orders have higher ids, as in production. ``due``: reserved orders whose payment
# deadline has just passed (the sweep's work); the history's reserved orders are due only in a
# day, so that none falls due while the benchmark runs.
BATCH_SQL = """
CREATE TEMP TABLE batch_orders ON COMMIT DROP AS
SELECT i AS id, b, h,
       CASE WHEN %(due)s THEN 'reserved' ELSE {status} END AS status,
       CASE WHEN %(due)s OR i %% {heavy_every} = 0 OR i <= %(heavy_first)s THEN %(heavy)s
            ELSE %(first_customer)s + (h %% %(customers)s)::int END AS customer_id,
       CASE WHEN %(due)s THEN now() - interval '40 minutes'
            ELSE %(timeline_end)s::timestamptz - (%(timeline_last)s - i + %(ids_skipped)s) * %(spacing)s::interval
       END AS created_at,
       1 + (CASE WHEN h %% 10 = 0 THEN 2 WHEN h %% 10 < 4 THEN 1 ELSE 0 END) AS lines
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i,
     LATERAL (SELECT (hashint8extended(i, 1) & {positive}) %% 10000 AS b,
                     hashint8extended(i, 2) & {positive} AS h) AS r;

CREATE TEMP TABLE batch_lines ON COMMIT DROP AS
SELECT o.id AS order_id, p.id AS product_id, p.sku, p.name, p.price AS unit_price, 1 + (o.h / 7 + k) %% 3 AS quantity
FROM batch_orders o, generate_series(0, o.lines - 1) AS k,
     LATERAL (SELECT (%(products)s::bigint[])[1 + (o.h + 7 * k) %% {products}] AS product_id) AS pick
JOIN inventory_product p ON p.id = pick.product_id;

INSERT INTO orders_orderline (order_id, product_id, sku, name, unit_price, quantity)
SELECT order_id, product_id, sku, name, unit_price, quantity FROM batch_lines;

INSERT INTO orders_order (id, customer_id, email, status, currency, total, created_at, updated_at,
                          reserved_at, expires_at, paid_at)
SELECT o.id, o.customer_id,
       CASE WHEN o.customer_id = %(heavy)s THEN 'heavy@growth.example'
            ELSE 'c' || (o.customer_id - %(first_customer)s) || '@growth.example' END,
       o.status, 'USD', t.total, o.created_at, o.created_at + interval '5 minutes',
       CASE WHEN o.status = 'reserved' THEN (CASE WHEN %(due)s THEN now() - interval '31 minutes'
                                                  ELSE now() - (o.h %% 1700) * interval '1 s' END)
            WHEN o.status IN ('pending', 'rejected') THEN NULL ELSE o.created_at + interval '2 seconds' END,
       CASE WHEN o.status = 'reserved' THEN (CASE WHEN %(due)s THEN now() - interval '1 minute'
                                                  ELSE now() + interval '1 day' + (o.h %% 1700) * interval '1 s' END)
            WHEN o.status IN ('pending', 'rejected') THEN NULL ELSE o.created_at + interval '30 minutes' END,
       CASE WHEN o.status IN ('paid', 'shipped', 'completed', 'refunded') THEN o.created_at + interval '3 minutes' END
FROM batch_orders o
JOIN (SELECT order_id, sum(unit_price * quantity) AS total FROM batch_lines GROUP BY order_id) t ON t.order_id = o.id;

INSERT INTO orders_orderevent (order_id, kind, from_status, to_status, actor, reason, data, created_at)
SELECT o.id, 'transition', p.source, p.target, p.actor, '', '{{}}'::jsonb, o.created_at + p.step * interval '1 minute'
FROM batch_orders o JOIN (VALUES {paths}) AS p (status, step, source, target, actor) ON p.status = o.status;
""".format(status=_status_case(), heavy_every=HEAVY_EVERY, products=PRODUCTS, paths=_PATHS_VALUES, positive=2**63 - 1)  # noqa: S608 - only the module's own constants are formatted in; values are parameters

CUSTOMERS_SQL = """
INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
SELECT '!', false, 'growth-c' || k, '', '', 'c' || k || '@growth.example', false, true, now()
FROM generate_series(%(first)s::int, %(last)s::int) AS k
"""

# Plain indexes (not those behind a primary key or a unique constraint) are dropped while a
# large batch loads and built again after: one sort per index instead of millions of inserts.
PLAIN_INDEXES_SQL = """
SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index
WHERE indrelid = ANY(%s::regclass[]) AND NOT indisprimary AND NOT indisunique
"""


@dataclass
class Dataset:
    """What has been generated so far, and what the readers need to find it."""

    timeline_last: int  # the largest size: its newest order is placed about now
    started_at: Any = None
    orders: int = 0  # of the history; the ids also count the sweep's due orders, added in between
    due_orders: int = 0
    customers: int = 0
    first_customer: int = 0
    heavy: int = 0
    products: list[int] = field(default_factory=list)
    heavy_token: str = ""
    staff_token: str = ""
    staff_cookie: str = ""


def _connect() -> Any:
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    return psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"], password=db["PASSWORD"] or None
    )


def seed(dataset: Dataset) -> None:
    """The products, the heavy customer and a staff user (with their token and session)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone

    from core.tokens import api_token_issue
    from inventory.services import product_create

    dataset.products = [
        product_create(sku=f"GROWTH-{n}", name=f"Growth product {n}", price=Decimal(5 + n % 50), currency="USD",
                       stock=1_000_000_000).pk
        for n in range(PRODUCTS)
    ]  # fmt: skip
    heavy = User.objects.create_user("growth-heavy", "heavy@growth.example")
    staff = User.objects.create_superuser("growth-staff", "staff@growth.example", "growth-password")
    dataset.heavy = heavy.pk
    dataset.heavy_token = api_token_issue(user=heavy).token
    dataset.staff_token = api_token_issue(user=staff).token
    session = SessionStore()
    session[SESSION_KEY] = str(staff.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = staff.get_session_auth_hash()
    session.create()
    dataset.staff_cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
    dataset.started_at = timezone.now()


@contextmanager
def _loading(conn: Any, *, rebuild_indexes: bool) -> Iterator[None]:
    """Session settings for a bulk load; the plain indexes dropped meanwhile if ``rebuild_indexes``."""
    with conn.cursor() as cursor:
        # Foreign keys are right by construction; their per-row triggers would double the load.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute("SET work_mem = '256MB'")
        indexes: list[tuple[str, str]] = []
        if rebuild_indexes:
            cursor.execute(PLAIN_INDEXES_SQL, [list(GROWING_TABLES)])
            indexes = cursor.fetchall()
            for name, _ in indexes:
                cursor.execute(f"DROP INDEX {name}")
        conn.commit()
        try:
            yield
        finally:
            for _, definition in indexes:
                cursor.execute(definition)
            conn.commit()
            cursor.execute("SET session_replication_role = DEFAULT")


def _load_orders(conn: Any, dataset: Dataset, *, first: int, last: int, due: bool = False) -> None:
    params = {
        "first": first,
        "last": last,
        "due": due,
        "heavy": dataset.heavy,
        "heavy_first": HEAVY_FIRST,
        "first_customer": dataset.first_customer,
        "customers": max(dataset.customers, 1),
        "timeline_end": dataset.started_at,
        "timeline_last": dataset.timeline_last,
        "ids_skipped": dataset.due_orders,
        "spacing": HISTORY / dataset.timeline_last,
        "products": dataset.products,
    }
    with conn.cursor() as cursor:
        for statement in BATCH_SQL.split(";\n\n"):
            cursor.execute(statement, params)
    conn.commit()


def grow(dataset: Dataset, size: int) -> dict[str, float]:
    """Generate orders (and customers) until the database holds ``size`` orders; timings."""
    started = time.perf_counter()
    added = size - dataset.orders
    with _connect() as conn, _loading(conn, rebuild_indexes=added >= 100_000):
        customers = max(10, size // ORDERS_PER_CUSTOMER)
        if customers > dataset.customers:
            with conn.cursor() as cursor:
                cursor.execute(CUSTOMERS_SQL, {"first": dataset.customers, "last": customers - 1})
                if not dataset.customers:
                    cursor.execute("SELECT min(id), max(id) FROM auth_user WHERE username LIKE 'growth-c%%'")
                    low, high = cursor.fetchone()
                    assert high - low + 1 == customers, "customer ids are not contiguous"
                    dataset.first_customer = low
            conn.commit()
            dataset.customers = customers
        while dataset.orders < size:
            count = min(size - dataset.orders, BATCH)
            first = dataset.orders + dataset.due_orders + 1
            _load_orders(conn, dataset, first=first, last=first + count - 1)
            dataset.orders += count
            log(f"{dataset.orders:,} / {size:,} orders ({time.perf_counter() - started:.0f} s)")
        loaded = time.perf_counter() - started
        log("building the indexes again" if added >= 100_000 else "loaded")
    indexed = time.perf_counter() - started - loaded
    finish(dataset)
    return {"load_s": loaded, "index_s": indexed, "total_s": time.perf_counter() - started}


def finish(dataset: Dataset) -> None:
    """Sequences past the explicit ids, claims of the pending orders, fresh planner statistics."""
    with _connect() as conn:
        conn.autocommit = True
        conn.execute("SELECT setval(pg_get_serial_sequence('orders_order', 'id'), (SELECT max(id) FROM orders_order))")
        conn.execute(
            "UPDATE inventory_product p SET claimed = coalesce((SELECT sum(l.quantity) FROM orders_orderline l "
            "JOIN orders_order o ON o.id = l.order_id WHERE o.status = 'pending' AND l.product_id = p.id), 0)"
        )
        # VACUUM sets the visibility map, so index-only scans see what a long-lived table gives them.
        for table in (*GROWING_TABLES, "inventory_product"):
            conn.execute(f"VACUUM (ANALYZE) {table}")
        # The load's dirty pages written now, and the autovacuum it set off let finish, so the
        # figures measure the grown database and not the tail of its loading (both share 2 cores).
        conn.execute("CHECKPOINT")
        _wait_for_autovacuum(conn)


def _wait_for_autovacuum(conn: Any, *, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        running = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
        ).fetchone()[0]
        if not running:
            return
        if time.monotonic() > deadline:
            log(f"measuring with {running} autovacuum worker(s) still running after {timeout:.0f} s")
            return
        log(f"waiting for {running} autovacuum worker(s) to finish")
        time.sleep(5)


def add_due_orders(dataset: Dataset) -> None:
    """``DUE_ORDERS`` more reserved orders of the heavy customer whose deadline has just passed."""
    with _connect() as conn:
        first = dataset.orders + dataset.due_orders + 1
        with _loading(conn, rebuild_indexes=False):
            _load_orders(conn, dataset, first=first, last=first + DUE_ORDERS - 1, due=True)
        dataset.due_orders += DUE_ORDERS
        conn.execute("SELECT setval(pg_get_serial_sequence('orders_order', 'id'), (SELECT max(id) FROM orders_order))")
        conn.commit()


def table_sizes() -> dict[str, int]:
    with _connect() as conn:
        return {
            table: conn.execute("SELECT pg_total_relation_size(%s::regclass)", [table]).fetchone()[0]
            for table in GROWING_TABLES
        }


# --- what each endpoint asks of PostgreSQL -----------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    name: str
    paths: Callable[[Dataset], list[str]]
    staff: bool = False
    admin: bool = False  # a page of the admin, with the staff user's session


def _heavy_orders(dataset: Dataset, count: int = 200) -> list[int]:
    """Order ids of the heavy customer, from all of its history."""
    with _connect() as conn:
        rows = conn.execute(
            "SELECT id FROM orders_order WHERE customer_id = %s AND id %% 97 = 0 LIMIT %s", [dataset.heavy, count]
        ).fetchall() or conn.execute("SELECT id FROM orders_order WHERE customer_id = %s LIMIT %s",
                                     [dataset.heavy, count]).fetchall()  # fmt: skip
    return [row[0] for row in rows]


ENDPOINTS = (
    Endpoint("customer: list", lambda d: ["/api/v1/orders/"]),
    Endpoint("customer: one order", lambda d: [f"/api/v1/orders/{i}/" for i in _heavy_orders(d)]),
    Endpoint("customer: order events", lambda d: [f"/api/v1/orders/{i}/events/" for i in _heavy_orders(d)]),
    Endpoint("staff: list", lambda d: ["/api/v1/orders/"], staff=True),
    Endpoint("staff: list by status", lambda d: ["/api/v1/orders/?status=reserved"], staff=True),
    Endpoint("admin: order list", lambda d: ["/admin/orders/order/"], admin=True),
    # The heavy customer's address: a full page at every size (an ordinary customer has ~45 orders).
    Endpoint("admin: order search (e-mail)", lambda d: ["/admin/orders/order/?q=heavy%40growth.example"], admin=True),
    Endpoint("admin: order filter (status)", lambda d: ["/admin/orders/order/?status__exact=paid"], admin=True),
    Endpoint("admin: operations dashboard", lambda d: ["/admin/"], admin=True),
)


def _walk(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _walk(child)


SCANS = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan")


@dataclass(frozen=True)
class QueryPlan:
    endpoint: str
    sql: str
    ms: float
    seq_scans: list[str]  # "relation (rows read)"
    counts: bool
    rows_read: int  # by every scan of the plan


def _plan(endpoint: str, sql: str, document: Any) -> QueryPlan:
    top = (json.loads(document) if isinstance(document, str) else document)[0]
    nodes = list(_walk(top["Plan"]))

    def rows(node: dict[str, Any]) -> int:
        return int(node.get("Actual Rows", 0) * node.get("Actual Loops", 1))

    scans = [f"{n['Relation Name']} ({rows(n):,} rows)" for n in nodes if n["Node Type"] == "Seq Scan"]
    read = sum(rows(n) for n in nodes if n["Node Type"] in SCANS)
    return QueryPlan(endpoint, sql, top.get("Execution Time", 0.0), scans, "COUNT(" in sql.upper(), read)


def explain(endpoint: Endpoint, dataset: Dataset) -> list[QueryPlan]:
    """Run one request of ``endpoint`` in this process and ``EXPLAIN ANALYZE`` each of its reads."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="localhost")
    headers = {}
    if endpoint.admin:
        client.force_login(User.objects.get(username="growth-staff"))
    else:
        headers["Authorization"] = f"Token {dataset.staff_token if endpoint.staff else dataset.heavy_token}"
    with CaptureQueriesContext(connection) as queries:
        response = client.get(endpoint.paths(dataset)[0], headers=headers)
    assert response.status_code == 200, (endpoint.name, response.status_code)
    plans = []
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
            plans.append(_plan(endpoint.name, sql, cursor.fetchone()[0]))
    return plans


# --- measuring -------------------------------------------------------------------------------------


@dataclass
class Figures:
    size: int
    load: dict[str, float] = field(default_factory=dict)
    endpoints: dict[str, list[LoadResult]] = field(default_factory=dict)
    sweep_ms: list[float] = field(default_factory=list)
    sweep_slowest: list[tuple[float, str]] = field(default_factory=list)  # (ms, SQL) of its last run
    plans: list[QueryPlan] = field(default_factory=list)
    reserved: int = 0
    table_bytes: dict[str, int] = field(default_factory=dict)


def measure(bench_system: system.System, dataset: Dataset, *, runs: int, duration: float) -> Figures:
    from orders.models import Order, OrderStatus

    figures = Figures(size=dataset.orders)
    figures.table_bytes = table_sizes()
    for endpoint in ENDPOINTS:
        figures.plans += explain(endpoint, dataset)
    for endpoint in ENDPOINTS:
        paths = endpoint.paths(dataset)
        # The admin's pages by the session alone: a request with a token skips the session.
        token = "" if endpoint.admin else dataset.staff_token if endpoint.staff else dataset.heavy_token
        cookie = dataset.staff_cookie if endpoint.admin else ""
        run_wrk(
            bench_system.url,
            token=token,
            kind="paths",
            values=paths,
            connections=CONNECTIONS,
            duration=2,
            cookie=cookie,
        )  # fmt: skip  (warm-up: connections, caches)
        figures.endpoints[endpoint.name] = [
            run_wrk(bench_system.url, token=token, kind="paths", values=paths, connections=CONNECTIONS,
                    duration=duration, cookie=cookie)
            for _ in range(runs)
        ]  # fmt: skip
        result = figures.endpoints[endpoint.name][-1]
        log(f"{endpoint.name}: {result.throughput:,.0f} req/s, p99 {result.p99_ms:,.0f} ms, {result.failed} failed")
    figures.reserved = Order.objects.filter(status=OrderStatus.RESERVED).count()
    figures.sweep_ms = [sweep(dataset, figures) for _ in range(runs)]
    return figures


def sweep(dataset: Dataset, figures: Figures) -> float:
    """Milliseconds the expiry sweep takes to close ``DUE_ORDERS`` due orders among all reserved."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from orders.services import order_expire_overdue

    add_due_orders(dataset)
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        expired = order_expire_overdue()
        elapsed = time.perf_counter() - started
    assert expired == DUE_ORDERS, expired
    select = next(q["sql"] for q in queries.captured_queries if "FOR UPDATE SKIP LOCKED" in q["sql"])
    timed = sorted(((float(q["time"]) * 1000, q["sql"]) for q in queries.captured_queries), reverse=True)
    figures.sweep_slowest = timed[:5]
    if not any(plan.endpoint == "expiry sweep" for plan in figures.plans):
        with connection.cursor() as cursor:
            # Its plan only (the due orders are closed by now): which index finds them, if any.
            cursor.execute(f"EXPLAIN (FORMAT JSON) {select}")
            figures.plans.append(_plan("expiry sweep", select, cursor.fetchone()[0]))
    log(f"expiry sweep: {DUE_ORDERS:,} due among {figures.reserved:,} reserved closed in {elapsed * 1000:,.0f} ms")
    return elapsed * 1000


# --- the run -----------------------------------------------------------------------------------------


def run(*, sizes: list[int], runs: int, duration: float, web_workers: int, keep: bool) -> list[Figures]:
    import django

    django.setup()
    from django.db import connections

    connections.close_all()
    system.recreate_database()
    system.empty_queues()
    system.collect_static()
    dataset = Dataset(timeline_last=max(sizes))
    seed(dataset)
    bench_system = system.System(web_workers=web_workers, worker_concurrency=1)
    results = []
    try:
        # No worker and no beat: nothing but the benchmark changes the data (beat's sweeper would
        # close the due orders the sweep benchmark is timed on).
        bench_system.start("web")
        for size in [EMPTY_ORDERS, *sizes]:
            log(f"growing to {size:,} orders")
            load = grow(dataset, size)
            log(f"{size:,} orders: loaded in {load['load_s']:.0f} s, indexes in {load['index_s']:.0f} s")
            figures = measure(bench_system, dataset, runs=runs, duration=duration)
            figures.load = load
            results.append(figures)
    finally:
        bench_system.stop()
        connections.close_all()
        if not keep:
            system.recreate_database()
        system.empty_queues()
    return results


def within(value: float, base: float) -> float:
    return value / base if base else float("inf")


def print_report(results: list[Figures], *, target: float = 1.25) -> bool:
    """The table (each size next to empty, with ratios), the load times and the query report."""
    empty, grown = results[0], results[1:]
    print(
        f"\nServed by gunicorn alone (no worker, no beat), production settings; wrk, {CONNECTIONS} connections, "
        f"{len(empty.endpoints[ENDPOINTS[0].name])} run(s) of each endpoint at each size (median)."
    )
    print()
    header = ["endpoint", f"empty ({empty.size:,} orders)"] + [f"{f.size:,} orders (x empty)" for f in grown]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    met = True
    for name in empty.endpoints:
        base_tp = statistics.median(r.throughput for r in empty.endpoints[name])
        base_p99 = statistics.median(r.p99_ms for r in empty.endpoints[name])
        base_failed = sum(r.failed for r in empty.endpoints[name])
        met &= base_failed == 0  # a figure of failed requests measures nothing
        base_cell = f"{base_tp:,.0f} req/s, p99 {base_p99:,.0f} ms"
        cells = [name, base_cell + (f", {base_failed:,} failed" if base_failed else "")]
        for figures in grown:
            tp = statistics.median(r.throughput for r in figures.endpoints[name])
            p99 = statistics.median(r.p99_ms for r in figures.endpoints[name])
            slower, p99_ratio = within(base_tp, tp), within(p99, base_p99)
            failed = sum(r.failed for r in figures.endpoints[name])
            met &= slower <= target and p99_ratio <= target and failed == 0
            cells.append(
                f"{tp:,.0f} req/s ({slower:.2f}), p99 {p99:,.0f} ms ({p99_ratio:.2f})"
                + (f", {failed:,} failed" if failed else "")
            )
        print("| " + " | ".join(cells) + " |")
    base_sweep = statistics.median(empty.sweep_ms)
    cells = [f"expiry sweep: {DUE_ORDERS:,} due", f"{base_sweep:,.0f} ms among {empty.reserved:,} reserved"]
    for figures in grown:
        ms = statistics.median(figures.sweep_ms)
        met &= within(ms, base_sweep) <= target
        cells.append(f"{ms:,.0f} ms ({within(ms, base_sweep):.2f}) among {figures.reserved:,} reserved")
    print("| " + " | ".join(cells) + " |")
    print(f"\n(x empty: how many times slower than on the empty database; goal: at most {target} everywhere)")
    for figures in grown:
        load = figures.load
        sizes = ", ".join(f"{table} {size / 2**20:,.0f} MiB" for table, size in figures.table_bytes.items())
        vacuum = load["total_s"] - load["load_s"] - load["index_s"]
        print(
            f"{figures.size:,} orders: generated in {load['load_s']:.0f} s, indexes built in "
            f"{load['index_s']:.0f} s, vacuumed, analysed and checkpointed in {vacuum:.0f} s; with indexes: {sizes}"
        )
    print(f"\nQueries that scan a whole table or count, at {results[-1].size:,} orders (EXPLAIN ANALYZE):")
    for plan in results[-1].plans:
        if plan.seq_scans or plan.counts:
            what = []
            if plan.seq_scans:
                what.append("sequential scan of " + ", ".join(plan.seq_scans))
            if plan.counts:
                what.append("COUNT")
            sql = " ".join(plan.sql.split())
            sql = sql if len(sql) <= 220 else sql[:220] + "..."
            print(f"- {plan.endpoint}: {'; '.join(what)}; {plan.rows_read:,} rows read, {plan.ms:,.1f} ms: {sql}")
    print(f"\nThe expiry sweep's slowest statements, at {results[-1].size:,} orders:")
    for ms, sql in results[-1].sweep_slowest:
        sql = " ".join(sql.split())
        print(f"- {ms:,.1f} ms: {sql if len(sql) <= 200 else sql[:200] + '...'}")
    report = system.LOG_DIR / "growth.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps([
        {"size": f.size, "load": f.load, "reserved": f.reserved, "sweep_ms": f.sweep_ms, "table_bytes": f.table_bytes,
         "sweep_slowest": f.sweep_slowest,
         "endpoints": {name: [r.__dict__ for r in rs] for name, rs in f.endpoints.items()},
         "plans": [p.__dict__ for p in f.plans]}
        for f in results
    ], indent=2, default=str))  # fmt: skip
    print(f"\n(also in {report})")
    return met


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000", help="orders, comma separated, increasing")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10, help="seconds per endpoint and run")
    parser.add_argument("--web-workers", type=int, default=2 * (os.cpu_count() or 1))
    parser.add_argument("--keep", action="store_true", help="leave the generated data in orders_bench")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    random.seed(0)
    system.prepare_environment()
    results = run(sizes=sizes, runs=args.runs, duration=args.duration, web_workers=args.web_workers, keep=args.keep)
    print_report(results)


if __name__ == "__main__":
    main()
