"""One reservation task on its way serves every order placed before it starts.

A reservation batch takes every pending order (``order_reserve``), so the orders placed while a
reservation task waits in its queue need no task of their own. A mark in Redis says one is on
its way:

- after an order's commit, the placing process sets the mark if it is not set, and publishes the
  order's task only then (``reservation_request_claim``); with the mark set, the order's outbox
  row is marked published and nothing is sent; a task that could not be sent (RabbitMQ
  unavailable: the outbox relay sends it later) removes the mark again, so during an outage each
  order's task waits in the outbox as before;
- a batch removes the mark once it has its turn and before it reads the pending orders
  (``reservation_requests_taken``): an order whose placing process found the mark set committed
  before that, so the batch sees it, and an order placed after it sets the mark again and sends
  a task of its own.

PostgreSQL stays the truth: the pending orders are there, and the mark only decides how many
messages wake the worker. Redis unavailable means every order sends its task, as without the
mark. A mark that outlives its task (a batch that could not remove it, a publish that failed and
waits for the outbox relay) is trusted for ``REQUEST_SECONDS`` only, and the reservation sweep
(``order_reservation_sweep``) queues a task for any order left pending longer than
``orders.services.reservation.RESERVATION_SWEEP_AFTER``.
"""

from __future__ import annotations

import logging

from django_redis import get_redis_connection

from core.outbox import SharedSend

logger = logging.getLogger(__name__)

REQUEST_KEY = "orders:reservation-requested"
# How long a mark may stand without a batch removing it. Longer saves nothing worth having (one
# task more per period at most), shorter only sends more tasks.
REQUEST_SECONDS = 5


def reservation_request_claim() -> bool:
    """Whether the order that just committed must send its own reservation task: True when no
    task is on its way (and the mark now says one is), or when Redis cannot tell. Call after
    the order's commit, never before: a batch must be able to see the order once the mark is
    gone."""
    try:
        return bool(get_redis_connection("default").set(REQUEST_KEY, 1, nx=True, ex=REQUEST_SECONDS))
    except Exception:  # every order sends its task, as without the mark
        logger.warning("Reservation mark unavailable; the order sends its own task", exc_info=True)
        return True


def reservation_requests_taken() -> None:
    """Remove the mark: the orders placed after this call send a task of their own. Called by a
    reservation batch, holding the turn, before it reads the pending orders, for a claimed task
    that could not be sent, and for a database recreated empty (tests, benchmarks). Never raises
    (a mark left standing expires, see the module's docstring)."""
    try:
        get_redis_connection("default").delete(REQUEST_KEY)
    except Exception:
        logger.warning("Could not remove the reservation mark; it expires on its own", exc_info=True)


# What the placement's outbox row does after commit (core.outbox.SharedSend).
RESERVATION_REQUEST = SharedSend(claim=reservation_request_claim, release=reservation_requests_taken)
