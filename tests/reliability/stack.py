"""The whole system on private services: PostgreSQL, RabbitMQ and Redis of its own, a gunicorn,
two workers and two beats, a merchant endpoint, a mailbox, and what scenarios do to it.

Every scenario runs against this system, so its faults (a stopped PostgreSQL, a restarted
RabbitMQ, a dead Redis, killed workers) touch nothing else on the machine.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.conftest import FLOW_WORKER_ENV
from tests.faults import free_port
from tests.notifications.receiver import WebhookReceiver
from tests.processes import ROOT, Beat, Gunicorn, Worker, wait_until
from tests.reliability.invariants import Expectations
from tests.reliability.services import PrivatePostgres, PrivateRabbitMQ, PrivateRedis, RabbitMQCluster

logger = logging.getLogger(__name__)

DATABASE = "orders"
VHOST = "orders"
# Reserved orders expire after this long, so the two beats' sweepers have work in every scenario.
PAYMENT_TIMEOUT_SECONDS = 6
# Generous for one request on a loaded two-core machine (a request waits up to 3 s for a dead
# PostgreSQL before answering 503).
HTTP_TIMEOUT = 30.0
# From the end of a fault until every order, message and notification has settled.
SETTLE_SECONDS = 120.0

SETTLED_SQL = """
SELECT
  (SELECT count(*) FROM orders_order WHERE status IN ('pending', 'reserved')),
  (SELECT count(*) FROM core_outboxmessage WHERE published_at IS NULL),
  (SELECT count(*) FROM notifications_emailnotification WHERE status IN ('pending', 'failed')),
  (SELECT count(*) FROM notifications_webhookdelivery WHERE status IN ('pending', 'failed'))
"""

# The first rows behind each count above, for a report when the system does not settle.
UNSETTLED_ROWS_SQL = {
    "order rows": "SELECT id, status, created_at FROM orders_order WHERE status IN ('pending', 'reserved') "
    "ORDER BY id LIMIT 5",
    "outbox rows": "SELECT id, task_name, attempts, created_at FROM core_outboxmessage WHERE published_at IS NULL "
    "ORDER BY id LIMIT 5",
    "email rows": "SELECT id, event_id, status, attempt_count, last_error, next_attempt_at "
    "FROM notifications_emailnotification WHERE status IN ('pending', 'failed') ORDER BY id LIMIT 5",
    "webhook rows": "SELECT id, order_id, sequence, status, attempt_count, last_error, next_attempt_at "
    "FROM notifications_webhookdelivery WHERE status IN ('pending', 'failed') ORDER BY id LIMIT 5",
}


@dataclass
class Answer:
    """What the API answered one order placement."""

    status: int
    content_type: str
    order_id: int | None
    body: str


class Stack:
    """The system on private services; RabbitMQ is one node, or ``broker`` (a cluster)."""

    def __init__(self, base_dir: Path, *, broker: PrivateRabbitMQ | RabbitMQCluster | None = None) -> None:
        self.base_dir = base_dir
        self.postgres = PrivatePostgres()
        self.broker = broker or PrivateRabbitMQ(base_dir)
        self.redis = PrivateRedis(base_dir)
        self.mailbox = base_dir / "mail"
        self.logs = base_dir / "logs"
        self.receiver = WebhookReceiver()
        self.web: Gunicorn | None = None
        self.workers: list[Worker] = []
        self.beats: list[Beat] = []
        self.accepted: set[int] = set()
        self.dead_letters: list[str] = []
        self.allowed_resends: list[str] = []
        self.customer_token = ""
        self.staff_token = ""

    @property
    def rabbitmq(self) -> PrivateRabbitMQ:
        """The one RabbitMQ node (scenarios that stop or reconfigure the broker)."""
        assert isinstance(self.broker, PrivateRabbitMQ), "this system runs on a cluster"
        return self.broker

    @property
    def cluster(self) -> RabbitMQCluster:
        assert isinstance(self.broker, RabbitMQCluster), "this system runs on one RabbitMQ node"
        return self.broker

    # --- set-up -----------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": self.postgres.url(DATABASE),
            "CELERY_BROKER_URL": self.broker.url(VHOST),
            "REDIS_URL": self.redis.url(0),
            # Throttling on (so Redis is in the path of every order), far above what scenarios send.
            "ORDER_CREATE_RATE": "100000/min",
            "OUTBOX_RELAY_SECONDS": "1",
            "ORDER_EXPIRY_SWEEP_SECONDS": "1",
            "ORDER_PAYMENT_TIMEOUT_SECONDS": str(PAYMENT_TIMEOUT_SECONDS),
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            **FLOW_WORKER_ENV,
            # Notifications retry a database outage within their attempt budget: enough attempts
            # (about 30 s of backoff in all) that a 10-second PostgreSQL outage does not exhaust it.
            "NOTIFY_MAX_RETRIES": "10",
            "NOTIFY_BACKOFF_BASE_SECONDS": "1",
            "NOTIFY_BACKOFF_MAX_SECONDS": "8",
            "EMAIL_FILE_PATH": str(self.mailbox),
        }

    def start(self) -> None:
        self.start_services()
        self.start_processes()

    def start_services(self) -> None:
        """PostgreSQL (migrated, with a customer, a staff user and two products), RabbitMQ, Redis,
        the merchant endpoint."""
        self.mailbox.mkdir()
        self.logs.mkdir()
        self.postgres.init().start()
        self.postgres.create_database(DATABASE)
        self.broker.init().start()
        self.broker.add_vhost(VHOST)
        self.redis.start()
        self.receiver.start()
        self.manage("migrate", "-v0")
        seeded = json.loads(self.shell(SEED))
        self.customer_token, self.staff_token = seeded["customer"], seeded["staff"]

    def start_processes(self) -> None:
        """gunicorn, two workers and two beats, and the merchant endpoint subscribed to every event."""
        self.web = Gunicorn(self.env, log_dir=self.logs, port=free_port(), workers=2)
        self.workers = [Worker(self.env, log_dir=self.logs, name=name) for name in ("a", "b")]
        self.beats = [Beat(self.env, log_dir=self.logs, name=name) for name in ("beat-a", "beat-b")]
        for process in (self.web, *self.workers, *self.beats):
            process.start()
        endpoint = self.api("POST", "webhooks/endpoints/", token=self.staff_token,
                            json={"url": self.receiver.url, "events": ALL_EVENTS})  # fmt: skip
        assert endpoint.status_code == 201, endpoint.text
        self.receiver.secret = endpoint.json()["secret"]

    def stop(self) -> None:
        for process in (*self.beats, *self.workers, self.web):
            if process is not None:
                process.stop()
        self.receiver.stop()
        self.redis.destroy()
        self.broker.destroy()
        self.postgres.destroy()

    # --- talking to it ----------------------------------------------------------------------

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"manage.py {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout

    def shell(self, code: str) -> str:
        """Run Python ``code`` in a Django process of this system; returns what it wrote to stdout."""
        return self.manage("shell", "--no-imports", "-c", code)

    def sql(self, query: str, params: Sequence[Any] | None = None) -> tuple[Any, ...]:
        with psycopg.connect(self.postgres.url(DATABASE), connect_timeout=5) as conn:
            row = conn.execute(query, params).fetchone()
            assert row is not None
            return tuple(row)

    def api(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        assert self.web is not None
        headers = {"Authorization": f"Token {token or self.customer_token}", **kwargs.pop("headers", {})}
        with httpx.Client(timeout=HTTP_TIMEOUT) as client:
            return client.request(method, f"{self.web.base_url}/api/v1/{path}", headers=headers, **kwargs)

    def place_order(self, client: httpx.Client, sku: str = "PLENTY", quantity: int = 1) -> Answer:
        assert self.web is not None
        response = client.post(
            f"{self.web.base_url}/api/v1/orders/",
            json={"items": [{"sku": sku, "quantity": quantity}]},
            headers={"Authorization": f"Token {self.customer_token}", "Idempotency-Key": str(uuid.uuid4())},
        )
        content_type = response.headers.get("content-type", "")
        body = response.json() if content_type.startswith("application/json") else {}
        answer = Answer(response.status_code, content_type, body.get("id") if response.status_code == 202 else None,
                        response.text[:300])  # fmt: skip
        if answer.order_id is not None:
            self.accepted.add(answer.order_id)
        return answer

    def place_orders(self, count: int, *, concurrency: int = 16, sku: str = "PLENTY") -> list[Answer]:
        """``count`` orders from ``concurrency`` clients at once."""

        def one(_: int, clients: dict[int, httpx.Client] = {}) -> Answer:  # noqa: B006 (one client per thread)
            client = clients.setdefault(threading.get_ident(), httpx.Client(timeout=HTTP_TIMEOUT))
            return self.place_order(client, sku)

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(one, range(count)))

    def orders_in_flight(self) -> int:
        """Accepted orders not yet final: waiting for their stock, or for payment (or expiry)."""
        return int(self.sql("SELECT count(*) FROM orders_order WHERE status IN ('pending', 'reserved')")[0])

    def queued_messages(self) -> int:
        """Messages in the work queues, ready or being worked on."""
        listed = self.broker.ctl("list_queues", "-p", VHOST, "--no-table-headers", "name", "messages").stdout
        return sum(int(count) for name, count in (line.split() for line in listed.splitlines()) if "." not in name)

    def settle(self, timeout: float = SETTLE_SECONDS) -> float:
        """Wait until every order is final and every message and notification has gone out; seconds waited."""
        started = time.monotonic()
        left: list[tuple[Any, ...]] = []

        def settled() -> bool:
            left[:] = [self.sql(SETTLED_SQL)]
            return left[0] == (0, 0, 0, 0)

        try:
            wait_until(settled, timeout=timeout, interval=0.5,
                       message="the system to settle (orders final, outbox published, notifications sent)")  # fmt: skip
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; still unsettled: {self.unsettled(left[0])}") from None
        return time.monotonic() - started

    def unsettled(self, counts: tuple[Any, ...]) -> dict[str, Any]:
        """What is left when the system does not settle: the counts, and the rows behind them."""
        orders, outbox, emails, webhooks = counts
        report: dict[str, Any] = {"orders": orders, "outbox": outbox, "emails": emails, "webhooks": webhooks}
        with psycopg.connect(self.postgres.url(DATABASE), connect_timeout=5) as connection:
            for name, query in UNSETTLED_ROWS_SQL.items():
                report[name] = connection.execute(query).fetchall()
        listed = self.broker.ctl("list_queues", "-p", VHOST, "--no-table-headers", "name", "messages", check=False)
        report["queued"] = [line for line in listed.stdout.splitlines() if line.split()[-1:] not in (["0"], [])]
        return report

    def invariant_report(self) -> dict[str, Any]:
        """Run the invariant checker against this system (in a process with its environment)."""
        with self.receiver._lock:
            successes: dict[str, int] = {}
            for request in self.receiver.requests:
                if 200 <= request.status < 300:
                    webhook_id = request.headers["webhook-id"]
                    successes[webhook_id] = successes.get(webhook_id, 0) + 1
        expect = Expectations(
            accepted_order_ids=sorted(self.accepted),
            dead_letter_ids=list(self.dead_letters),
            webhook_successes=successes,
            allowed_resends=list(self.allowed_resends),
        )
        path = self.base_dir / f"expect-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(asdict(expect)))
        result = subprocess.run(
            [sys.executable, "-m", "tests.reliability.invariants", str(path)],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])

    # --- faults -------------------------------------------------------------------------------

    def kill_pool_process(self, worker: Worker) -> int:
        """SIGKILL one prefork pool process of ``worker``; returns its pid."""
        assert worker.proc is not None
        children = subprocess.run(["pgrep", "-P", str(worker.proc.pid)], capture_output=True, text=True).stdout.split()
        assert children, "the worker has no pool process"
        pid = int(children[0])
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill_main_process(self, worker: Worker) -> None:
        """SIGKILL a worker's main process, then clear what is left of it (its orphaned pool
        processes, as a supervisor stopping the unit would) and start it again."""
        assert worker.proc is not None
        pid = worker.proc.pid
        os.kill(pid, signal.SIGKILL)
        worker.proc.wait(timeout=10)
        time.sleep(1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        worker.stop()
        worker.start()


# --- what scenarios share ----------------------------------------------------------------------


def assert_invariants(stack: Stack, scenario: str) -> dict:
    """Run the invariant checker; fail on any violation. Returns (and logs) its figures."""
    report = stack.invariant_report()
    logger.warning("%s: %s", scenario, json.dumps(report["figures"]))
    assert report["violations"] == [], report
    return report["figures"]


def accept_resends_caused_by_the_fault(stack: Stack, *, at_most: int) -> None:
    """A webhook or e-mail sent just before its worker was killed, or PostgreSQL went away, and
    so never recorded as sent, is sent again, with the same webhook-id or Message-ID (at least
    once is all that can be promised to the outside; receivers drop the copy). At most one send
    per notification task in flight at the fault is repeated: one webhook delivery, or one e-mail
    batch (each of its e-mails sent before the fault, up to the batch's size)."""
    figures = stack.invariant_report()["figures"]
    resent = [k for k in figures["resent after a crash"] if k not in stack.allowed_resends]
    sends_repeated = {figures["first sent in"][k] for k in resent}
    stack.allowed_resends += resent  # counted once, here, even if this fails: the stack outlives the test
    assert len(sends_repeated) <= at_most, (sends_repeated, resent)


def codes(answers: list[Answer]) -> Counter[int]:
    return Counter(answer.status for answer in answers)


class OrderStream:
    """Places orders one after another, every ``interval`` seconds, until stopped."""

    def __init__(self, stack: Stack, *, interval: float = 0.1) -> None:
        self.stack = stack
        self.interval = interval
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=HTTP_TIMEOUT) as client:
            while not self._stop.is_set():
                try:
                    self.answers.append(self.stack.place_order(client))
                except httpx.HTTPError as exc:  # no answer at all: reported by the test
                    self.answers.append(Answer(0, "", None, repr(exc)))
                self._stop.wait(self.interval)

    def __enter__(self) -> OrderStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


ALL_EVENTS = [
    f"order.{state}"
    for state in ("pending", "reserved", "rejected", "paid", "cancelled", "expired", "shipped", "refunded", "completed")
]

SEED = """
import json
from decimal import Decimal
from django.contrib.auth.models import User
from core.tokens import api_token_issue
from inventory.services import product_create
from tests.factories import staff_permissions_grant
customer = User.objects.create_user(username="buyer", email="buyer@example.com")
staff = User.objects.create_user(username="staff", email="staff@example.com", is_staff=True)
staff_permissions_grant(staff)
product_create(sku="PLENTY", name="Plenty", price=Decimal("4.00"), currency="USD", stock=100000)
product_create(sku="SCARCE", name="Scarce", price=Decimal("9.00"), currency="USD", stock=50)
print(json.dumps({"customer": api_token_issue(user=customer).token, "staff": api_token_issue(user=staff).token}))
"""
