"""One reservation task on its way serves every order placed before it starts.

A reservation batch takes every pending order (``order_reserve``), so the orders placed while a
reservation task waits in its queue need no task of their own. A mark in Redis says one is on
its way:

- after an order's commit, the placing process sets the mark if it is not set, and publishes the
  order's task only then (``reservation_request_claim``); with the mark set, the order's outbox
  row is marked published and nothing is sent; a task that could not be sent (RabbitMQ
  unavailable: the outbox relay sends it later) removes the mark again, so during an outage each
  order's task waits in the outbox as before;
- the task sent waits until the mark has stood ``RESERVATION_GATHER_SECONDS`` before its batch
  starts (``reservation_requests_gather``), so that under load the orders placed meanwhile
  join that batch instead of each making a small one;
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
import time

from django_redis import get_redis_connection

from core.outbox import SharedSend

logger = logging.getLogger(__name__)

REQUEST_KEY = "orders:reservation-requested"
# How long a mark may stand without a batch removing it. Longer saves nothing worth having (one
# task more per period at most), shorter only sends more tasks.
REQUEST_SECONDS = 5
# How long a batch gathers orders, counted from the mark's setting (the first order it serves). A
# batch's fixed cost (its turn, its reads and statements, its e-mail task, their publishes) is
# most of a small batch's; waiting this long adds as much to the time an order waits for its
# reservation (docs/performance.md has the measurements).
RESERVATION_GATHER_SECONDS = 0.25


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


def reservation_requests_gather() -> None:
    """Wait until the mark has stood ``RESERVATION_GATHER_SECONDS``: the orders placed meanwhile
    send no task and join the batch of the task that waits. Call before the batch's turn, holding
    no lock. At once when there is no mark (a task sent again, by the relay or the sweep, once the
    batches have caught up), when the mark is older (the task waited in its queue) or when Redis
    cannot tell."""
    try:
        left_ms = get_redis_connection("default").pttl(REQUEST_KEY)  # -2 without a mark
    except Exception:
        logger.warning("Reservation mark unavailable; the batch starts at once", exc_info=True)
        return
    age = REQUEST_SECONDS - left_ms / 1000  # the mark's, when there is one
    if left_ms > 0 and age < RESERVATION_GATHER_SECONDS:
        time.sleep(RESERVATION_GATHER_SECONDS - age)


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
