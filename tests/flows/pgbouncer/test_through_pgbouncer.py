"""The system behind PgBouncer in transaction pooling mode: nothing depends on session state.

The flow tests below are the ones of tests/flows/, imported and run again here against a
gunicorn and Celery workers whose every database connection goes through PgBouncer (see this
package's conftest.py): the order lifecycle, 200 buyers racing for 50 units over HTTP, and
webhook and e-mail delivery with retries, dead-lettering and replay.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from orders.models import Order, OrderStatus
from tests.conftest import ROOT
from tests.factories import make_product
from tests.flows.pgbouncer.conftest import POOL_SIZE, start_pgbouncer
from tests.flows.test_no_oversell import test_200_buyers_over_http_get_exactly_the_50_units_in_stock
from tests.flows.test_notification_delivery import (
    test_an_endpoint_failing_twice_then_answering_gets_three_attempts_with_backoff,
    test_an_endpoint_that_keeps_failing_is_dead_lettered_then_replayed_and_delivered_once,
    test_the_customer_is_mailed_the_pay_by_deadline_when_the_order_is_reserved,
)
from tests.flows.test_order_lifecycle import (
    test_a_cancelled_order_returns_its_stock,
    test_a_refunded_order_returns_its_stock,
    test_an_order_is_placed_reserved_paid_shipped_and_completed,
)
from tests.processes import wait_until
from tests.reliability.services import PrivatePgBouncer

logger = logging.getLogger(__name__)

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

__all__ = [
    "test_200_buyers_over_http_get_exactly_the_50_units_in_stock",
    "test_a_cancelled_order_returns_its_stock",
    "test_a_refunded_order_returns_its_stock",
    "test_an_endpoint_failing_twice_then_answering_gets_three_attempts_with_backoff",
    "test_an_endpoint_that_keeps_failing_is_dead_lettered_then_replayed_and_delivered_once",
    "test_an_order_is_placed_reserved_paid_shipped_and_completed",
    "test_the_customer_is_mailed_the_pay_by_deadline_when_the_order_is_reserved",
]

# Every sender takes the send lease of one notification at the same moment, each on its own
# connection to PgBouncer, and holds on until all have tried; prints who got it.
SENDERS_RACE = """
import json, threading
from django.db import connection
from notifications.lock_objects import send_lock
SENDERS = 6
start, holding, taken = threading.Barrier(SENDERS), threading.Barrier(SENDERS), []
def sender():
    try:
        start.wait()
        with send_lock(kind="webhook_delivery", object_id=424242) as acquired:
            taken.append(acquired)
            holding.wait(timeout=30)
    finally:
        connection.close()
threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(timeout=60)
print(json.dumps(taken))
"""


def test_one_sender_holds_a_notification_even_when_all_share_one_server_connection(service_env):
    # given a PgBouncer with a single server connection, which every client's statements share
    bouncer = start_pgbouncer(pool_size=1)
    try:
        # when six workers try to send the same notification at once, each through it
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", SENDERS_RACE],
            cwd=ROOT, env={**service_env, "DATABASE_URL": bouncer.url()}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        bouncer.destroy()

    # then exactly one of them may send it (a session-level lock would be "held" by all of them:
    # each finds the lock on the one session, as its own)
    assert done.returncode == 0, done.stderr
    taken = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(taken) == [False] * 5 + [True], taken


def test_web_and_workers_share_fewer_server_connections_than_they_have_clients(
    pgbouncer: PrivatePgBouncer, live_worker, customer_api
):
    # given orders placed four at a time, so both gunicorn workers and both pool processes work
    make_product("BOUNCED", stock=100)
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: customer_api.place_order([{"sku": "BOUNCED", "quantity": 1}]), range(20)))
    assert {answer.status_code for answer in answers} == {202}
    wait_until(lambda: not Order.objects.filter(status=OrderStatus.PENDING).exists(), timeout=60, message="reserved")

    # then PgBouncer pooled by transaction, and its clients (which keep their connections for
    # CONN_MAX_AGE) shared at most POOL_SIZE server connections
    def ours(rows: list[dict]) -> list[dict]:
        return [row for row in rows if row["database"] == pgbouncer.database]

    [pool_row] = ours(pgbouncer.show("POOLS"))
    [stats] = ours(pgbouncer.show("STATS"))
    clients, servers = ours(pgbouncer.show("CLIENTS")), ours(pgbouncer.show("SERVERS"))
    logger.warning(
        "PgBouncer: %d client connections on %d server connections, %d transactions, %d queries",
        len(clients), len(servers), stats["total_xact_count"], stats["total_query_count"],
    )  # fmt: skip
    assert pool_row["pool_mode"] == "transaction"
    assert stats["total_xact_count"] >= 20 * 3, stats  # placing, reserving and announcing each order
    assert len(clients) > POOL_SIZE, clients
    assert len(servers) <= POOL_SIZE, servers
