"""Benchmark: close N overdue reserved orders with the expiry sweeper, stock released.

    python -m bench.expiry [--orders 20000] [--runs 3]

Uses its own database (``orders_bench``, recreated on each run) on the local PostgreSQL, and
production settings. Reports orders per second for each run and the median, with min and max.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "orders_bench"
BENCH_VHOST = "orders_bench"
PRODUCTS = 50


def prepare_environment() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")
    os.environ.setdefault("PAYMENT_WEBHOOK_SECRET", "whsec_YmVuY2htYXJrLXNlY3JldA==")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}"
    # Its own virtual host (created by scripts/services.sh), emptied before each run.
    os.environ["CELERY_BROKER_URL"] = f"amqp://guest:guest@127.0.0.1:5672/{BENCH_VHOST}"


def recreate_database() -> None:
    for sql in (f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)', f'CREATE DATABASE "{BENCH_DB}"'):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True, capture_output=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)


def empty_queues() -> None:
    from kombu import Connection

    from config import queues

    with Connection(os.environ["CELERY_BROKER_URL"]) as connection:
        queues.declare_topology(connection)
        for queue in (*queues.WORK_QUEUES, *queues.DEAD_LETTER_QUEUES):
            queue.bind(connection.default_channel).purge()


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    prepare_environment()
    sys.path.insert(0, str(ROOT))
    rates = []
    for run in range(1, args.runs + 1):
        recreate_database()
        empty_queues()
        rate = one_run(args.orders)
        rates.append(rate)
        print(f"run {run}: {args.orders} orders expired, {rate:,.0f} orders/s", flush=True)
    print(
        f"expiry: median {statistics.median(rates):,.0f} orders/s (min {min(rates):,.0f}, max {max(rates):,.0f}) "
        f"over {args.runs} runs of {args.orders} orders on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
