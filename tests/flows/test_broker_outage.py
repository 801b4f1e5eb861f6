"""An accepted order is never lost: orders taken while RabbitMQ is unreachable are reserved after.

RabbitMQ serves other test runs on this machine, so it is never stopped: a gunicorn, a worker and
a beat of this test reach it through a TCP proxy, and the proxy is cut.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from core.models import OutboxMessage
from orders.models import Order, OrderStatus
from tests.factories import make_product
from tests.faults import TcpProxy
from tests.flows.support import Api, assert_stock_reconciles, available, user_with_token
from tests.processes import wait_until

logger = logging.getLogger(__name__)

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

ORDERS_DURING_OUTAGE = 20
# The orders are spread over this long: longer than the web's back-off after a failed publish
# (so it tries the broker again while it is still down) and several beat intervals.
OUTAGE_SECONDS = 7.0
# The longest an order may take to be accepted while the broker is down: the web process makes
# one connection attempt after commit (refused at once here; broker_connection_timeout bounds a
# silent broker to 3 s), then leaves publishing to the relay for a while.
MAX_ACCEPT_SECONDS = 3.0
# From the broker's return until every order is reserved: reconnection, a relay run, the work.
RECOVERY_SECONDS = 60.0


@pytest.fixture
def broker_proxy() -> Iterator[TcpProxy]:
    broker = urlsplit(settings.CELERY_BROKER_URL)
    with TcpProxy(broker.hostname or "127.0.0.1", broker.port or 5672) as proxy:
        yield proxy


def through(proxy: TcpProxy) -> str:
    """The test broker URL (same credentials, same virtual host) with the proxy as its address."""
    broker = urlsplit(settings.CELERY_BROKER_URL)
    return urlunsplit(broker._replace(netloc=f"{broker.username}:{broker.password}@127.0.0.1:{proxy.port}"))


def test_orders_taken_while_the_broker_is_unreachable_are_all_reserved_once_it_is_back(
    broker_proxy, without_shared_workers, process_factory
):
    # given a web server, a worker and a beat (relaying every second) that reach RabbitMQ through a proxy
    env = {"CELERY_BROKER_URL": through(broker_proxy), "OUTBOX_RELAY_SECONDS": "1"}
    web = process_factory.web(env=env)
    process_factory.worker(name="proxied", env=env)
    process_factory.beat(env=env)
    product = make_product("OUTAGE", stock=100)
    _, token = user_with_token("patient")
    api = Api(web.base_url, token)
    items = [{"sku": "OUTAGE", "quantity": 1}]
    # and the pipeline works through it
    response = api.place_order(items)
    assert api.wait_for_status(response.headers["Location"])["status"] == "reserved"

    # when the broker becomes unreachable (every connection closed, new ones refused)
    broker_proxy.cut()
    outage_started = time.monotonic()
    # and orders keep coming, one every few hundred milliseconds
    answers = []
    for i in range(ORDERS_DURING_OUTAGE):
        time.sleep(max(0.0, outage_started + i * OUTAGE_SECONDS / ORDERS_DURING_OUTAGE - time.monotonic()))
        started = time.monotonic()
        response = api.place_order(items)
        answers.append((response.status_code, time.monotonic() - started))

    # then every one is accepted, promptly
    slowest = max(seconds for _, seconds in answers)
    logger.info("Answers during the outage: %s", [(code, round(seconds, 2)) for code, seconds in answers])
    assert [code for code, _ in answers] == [202] * ORDERS_DURING_OUTAGE, answers
    assert slowest < MAX_ACCEPT_SECONDS, answers
    # and waits, recorded in the outbox
    waiting = Order.objects.filter(status=OrderStatus.PENDING).count()
    assert waiting == ORDERS_DURING_OUTAGE
    # (the reservation tasks; e-mails of the first order may also be caught by the cut)
    unpublished = OutboxMessage.objects.filter(published_at__isnull=True, task_name="orders.tasks.order_reserve_task")
    assert unpublished.count() == ORDERS_DURING_OUTAGE

    # when the broker is reachable again
    outage = time.monotonic() - outage_started
    broker_proxy.restore()
    restored = time.monotonic()

    # then every order reaches its final state, all outbox rows are published, and the stock adds up
    wait_until(
        lambda: not Order.objects.filter(status=OrderStatus.PENDING).exists(),
        timeout=RECOVERY_SECONDS,
        interval=0.5,
        message="every order accepted during the outage to be worked on",
    )
    logger.info(
        "Outage of %.1fs; all orders settled %.1fs after the broker returned", outage, time.monotonic() - restored
    )
    assert Order.objects.filter(status=OrderStatus.RESERVED).count() == 1 + ORDERS_DURING_OUTAGE
    # (follow-ups the processes could not publish at once, such as e-mails, go out with the relay)
    wait_until(
        lambda: not OutboxMessage.objects.filter(published_at__isnull=True).exists(),
        timeout=RECOVERY_SECONDS,
        interval=0.5,
        message="the relay to publish what is left in the outbox",
    )
    assert available(product) == 100 - 1 - ORDERS_DURING_OUTAGE
    assert_stock_reconciles()

    # and the web processes publish orders themselves again (the relay counts attempts, they do not)
    def placed_and_published_by_the_web() -> bool:
        response = api.place_order(items)
        assert response.status_code == 202, response.text
        message = OutboxMessage.objects.get(args=[response.json()["id"]])
        return message.published_at is not None and message.attempts == 0

    wait_until(placed_and_published_by_the_web, timeout=30, interval=0.5, message="the web to publish again")
    api.client.close()
