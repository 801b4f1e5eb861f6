"""Benchmark: close N overdue reserved orders with the expiry sweeper, stock released.

Part of ``python -m bench`` (see bench/__main__.py); on its own:

    python -m bench.expiry [--orders 20000] [--runs 3]

Runs the sweeper in this process on its own database (``orders_bench``, recreated on each run),
with production settings. Reports orders per second for each run and the median, with min and max.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from bench import system

PRODUCTS = 50


def one_run(orders: int) -> float:
    import django
    from django.db import connections
    from django.utils import timezone

    django.setup()
    from datetime import timedelta

    from inventory.models import Product
    from orders.models import Order
    from orders.services import order_expire_overdue
    from tests.factories import make_product, make_reserved_orders

    per_product = orders // PRODUCTS
    deadline = timezone.now() - timedelta(seconds=1)
    for _ in range(PRODUCTS):
        product = make_product(stock=per_product)
        make_reserved_orders(product=product, count=per_product, expires_at=deadline)

    started = time.perf_counter()
    expired = order_expire_overdue()
    elapsed = time.perf_counter() - started

    assert expired == per_product * PRODUCTS, expired
    assert not Order.objects.filter(status="reserved").exists()
    assert all(p.available == per_product for p in Product.objects.all()), "stock not released"
    connections.close_all()
    return expired / elapsed


def one_timed_run(orders: int) -> float:
    """A fresh database and empty queues, then one run; orders expired per second."""
    import django
    from django.db import connections

    django.setup()  # emptying the queues imports the bench app's models

    connections.close_all()
    system.recreate_database()
    system.empty_queues()
    return one_run(orders)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    system.prepare_environment()
    rates = []
    for run in range(1, args.runs + 1):
        rate = one_timed_run(args.orders)
        rates.append(rate)
        print(f"run {run}: {args.orders} orders expired, {rate:,.0f} orders/s", flush=True)
    print(
        f"expiry: median {statistics.median(rates):,.0f} orders/s (min {min(rates):,.0f}, max {max(rates):,.0f}) "
        f"over {args.runs} runs of {args.orders} orders on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
