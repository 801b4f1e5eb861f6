"""A black-box run against the contract, with real faults, on this machine.

    .venv/bin/python -m tests.reliability.blackbox [--buyers 300] [--stock 100]

Starts gunicorn, two workers and beat on a scratch database (``orders_blackbox``) and the
``orders_bench`` RabbitMQ virtual host, then sends concurrent buyers for one SKU (each request
sent twice with the same Idempotency-Key), and meanwhile restarts RabbitMQ (``rabbitmqctl
stop_app`` / ``start_app``: it stops the broker for every user of this machine), SIGKILLs a
worker's pool process and SIGKILLs the other worker's main process (then starts it again), and
publishes every outbox message a second time. It ends by checking: nothing oversold, no
accepted order lost or left pending, each order once, the ledger balanced.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent.parent
DB = "orders_blackbox"
VHOST = "orders_bench"


def environment() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "PAYMENT_WEBHOOK_SECRET": "whsec_YmxhY2tib3gtc2VjcmV0",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
        "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{VHOST}",
        "REDIS_URL": "redis://127.0.0.1:6379/5",
        "ORDER_CREATE_RATE": "",
        "OUTBOX_RELAY_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)  # noqa: T201


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buyers", type=int, default=300)
    parser.add_argument("--stock", type=int, default=100)
    args = parser.parse_args()
    env = environment()
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    for sql in (f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)', f'CREATE DATABASE "{DB}"'):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)

    import django

    django.setup()
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    from inventory.models import StockLedgerEntry
    from inventory.selectors import stock_discrepancies
    from inventory.services import product_create
    from orders.models import Order, OrderEvent
    from tests import processes

    processes.reset_broker()
    logs = Path("/tmp") / f"blackbox-{uuid.uuid4().hex[:8]}"
    logs.mkdir()
    web = processes.Gunicorn(env, log_dir=logs, port=processes.free_port(), workers=2)
    worker_a = processes.Worker(env, log_dir=logs, name="a")
    worker_b = processes.Worker(env, log_dir=logs, name="b")
    beat = processes.Beat(env, log_dir=logs)
    started = [web, worker_a, worker_b, beat]
    for process in started:
        process.start()
    say(f"system up (logs in {logs})")

    product = product_create(sku="FLASH", name="Flash sale", price=Decimal("5.00"),
                             currency="USD", stock=args.stock)  # fmt: skip
    tokens = []
    for i in range(args.buyers):
        user = User.objects.create_user(username=f"buyer{i}", email=f"buyer{i}@example.com")
        tokens.append(Token.objects.create(user=user).key)

    answers: list[tuple[int, int, Any]] = []
    lock = threading.Lock()

    def buy(i: int) -> None:
        key = str(uuid.uuid4())
        with httpx.Client(timeout=60) as client:
            for _ in range(2):  # every request delivered twice
                response = client.post(
                    f"{web.base_url}/api/v1/orders/",
                    json={"items": [{"sku": "FLASH", "quantity": 1}]},
                    headers={"Authorization": f"Token {tokens[i]}", "Idempotency-Key": key},
                )
                body = (
                    response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
                )
                with lock:
                    answers.append((i, response.status_code, body.get("id")))

    def faults() -> None:
        assert worker_a.proc is not None and worker_b.proc is not None
        time.sleep(1.0)
        pool_children = subprocess.run(
            ["pgrep", "-P", str(worker_a.proc.pid)], capture_output=True, text=True
        ).stdout.split()
        if pool_children:
            os.kill(int(pool_children[0]), signal.SIGKILL)
            say(f"SIGKILL worker a's pool process {pool_children[0]} ({len(answers)} answers so far)")
        os.kill(worker_b.proc.pid, signal.SIGKILL)
        say(f"SIGKILL worker b's main process ({len(answers)} answers so far)")
        time.sleep(1.0)
        worker_b.stop()
        worker_b.start()
        say("worker b started again")
        say(f"RabbitMQ: stop_app ({len(answers)} answers so far)")
        subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True)
        time.sleep(5)
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True)
        say(f"RabbitMQ: start_app ({len(answers)} answers so far)")

    fault_thread = threading.Thread(target=faults)
    fault_thread.start()
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        list(pool.map(buy, range(args.buyers)))
    say(f"{len(answers)} answers in {time.monotonic() - t0:.1f}s")
    fault_thread.join()

    # every outbox message published once more: duplicated deliveries
    from core.models import OutboxMessage
    from core.outbox import outbox_relay

    OutboxMessage.objects.update(published_at=None)
    say(f"republished {outbox_relay(grace=timedelta(0))} outbox message(s)")

    deadline = time.monotonic() + 180
    while Order.objects.filter(status="pending").exists() and time.monotonic() < deadline:
        time.sleep(1)

    codes: dict[int, int] = {}
    for _, code, _ in answers:
        codes[code] = codes.get(code, 0) + 1
    accepted_ids = {order_id for _, code, order_id in answers if code == 202}
    by_buyer: dict[int, set[int]] = {}
    for i, code, order_id in answers:
        if code == 202:
            by_buyer.setdefault(i, set()).add(order_id)
    product.refresh_from_db()
    reserved = Order.objects.filter(status="reserved").count()
    results = {
        "answers": codes,
        "orders": Order.objects.count(),
        "accepted": len(accepted_ids),
        "reserved": reserved,
        "rejected": Order.objects.filter(status="rejected").count(),
        "pending": Order.objects.filter(status="pending").count(),
        "available": product.available,
        "reservation ledger rows": StockLedgerEntry.objects.filter(kind="reservation").count(),
        "reserved events": OrderEvent.objects.filter(to_status="reserved").count(),
    }
    say(f"results: {results}")
    problems = []
    if any(code >= 500 for code in codes):
        problems.append("server errors")
    if reserved > args.stock or product.available < 0:
        problems.append("oversold")
    if reserved + product.available != args.stock:
        problems.append("stock does not add up")
    if results["pending"]:
        problems.append("orders left pending")
    if not accepted_ids <= set(Order.objects.values_list("pk", flat=True)):
        problems.append("accepted orders lost")
    if any(len(ids) > 1 for ids in by_buyer.values()) or results["orders"] != args.buyers:
        problems.append("an order was created twice for one key")
    if results["reservation ledger rows"] != reserved or results["reserved events"] != reserved:
        problems.append("duplicated effects")
    if stock_discrepancies():
        problems.append("ledger not balanced")
    for process in reversed(started):
        process.stop()
    say("PASS" if not problems else f"FAIL: {problems}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
