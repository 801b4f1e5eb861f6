"""Liveness and readiness probes.

``/healthz`` answers while the process is up. ``/readyz`` tells a load balancer whether this web
process can take orders: it can while PostgreSQL answers. RabbitMQ and Redis are reported, but
their loss does not take the process out of service: orders are accepted into the outbox while
RabbitMQ is down (it delays work, loses nothing), and Redis is only an accelerator. A load
balancer gating on a broker outage would take every web process out at once, for nothing.

A probe storm (every load balancer, every few seconds, against every process) must cost the
services almost nothing and answer within a second:

- the three checks run in parallel, each in a thread of its own that keeps its connection
  (PostgreSQL: Django's connection of that thread; Redis: the cache's connection pool; RabbitMQ:
  one AMQP connection per process), so a probe opens no connection while the services are up;
- the result is kept for ``CACHE_SECONDS`` in the process: probes in between read it;
- a probe waits at most ``DEADLINE_SECONDS`` for the checks; a check still running then counts
  as unavailable (``"timeout"``), and the next probe waits for that same check rather than
  starting another, so a hanging service costs one thread and one connection attempt at a time.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django_redis import get_redis_connection

from config.celery_app import app
from core.tracing import untraced

logger = logging.getLogger(__name__)

# How long one probe waits for the checks: the answer comes within a second.
DEADLINE_SECONDS = 0.8
# How long a result serves the probes that follow it (per process).
CACHE_SECONDS = 1.0
# Connecting to RabbitMQ, and any read or write on the check's connection, gives up after this.
BROKER_TIMEOUT_SECONDS = 2.0

OK = "ok"
DEGRADED = "degraded"
UNAVAILABLE = "unavailable"


def check_postgresql() -> None:
    # This thread's own connection, kept between checks as Django keeps a request's
    # (CONN_MAX_AGE); a broken or expired one is replaced.
    connection.close_if_unusable_or_obsolete()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        connection.close()  # the next check connects afresh
        raise


def check_redis() -> None:
    # The cache's own connection pool (django-redis), with its short socket timeouts.
    get_redis_connection("default").ping()


_broker: Any = None  # this process's AMQP connection for the check (kombu.Connection)


def check_rabbitmq() -> None:
    """Open and close a channel on a connection kept open between checks: one round trip.

    A connection that broke while idle (the broker restarted, a firewall dropped it) is
    replaced once within the same check, so only a broker that refuses a fresh connection
    counts as down.
    """
    global _broker
    for attempt in (1, 2):
        if _broker is None:
            _broker = app.connection_for_read(
                settings.CELERY_BROKER_URL,
                connect_timeout=BROKER_TIMEOUT_SECONDS,
                transport_options={"read_timeout": BROKER_TIMEOUT_SECONDS, "write_timeout": BROKER_TIMEOUT_SECONDS},
            )
        try:
            _broker.ensure_connection(max_retries=0)
            _broker.channel().close()
            return
        except Exception:
            _broker.collect()  # drop the socket without a closing handshake nobody would answer
            _broker = None
            if attempt == 2:
                raise


@dataclass(frozen=True)
class Dependency:
    name: str
    check: Callable[[], None]
    # Needed to take orders: without it the process is not ready (503).
    required: bool


DEPENDENCIES = (
    Dependency("postgresql", check_postgresql, required=True),
    Dependency("redis", check_redis, required=False),
    Dependency("rabbitmq", check_rabbitmq, required=False),
)


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, dict[str, Any]]
    taken_at: float  # time.monotonic()

    @property
    def down(self) -> list[str]:
        return [name for name, check in self.checks.items() if check["status"] != OK]

    @property
    def ready(self) -> bool:
        return all(check["status"] == OK for check in self.checks.values() if check["required"])

    @property
    def status(self) -> str:
        if not self.ready:
            return UNAVAILABLE
        return DEGRADED if self.down else OK


class _Checker:
    """The checks of one process: a thread per dependency, the running checks, the last result."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.executors = {
            d.name: concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"readyz-{d.name}")
            for d in DEPENDENCIES
        }
        self.running: dict[str, concurrent.futures.Future[float]] = {}
        self.last: Readiness | None = None

    def fresh(self) -> Readiness | None:
        if self.last is not None and time.monotonic() - self.last.taken_at < CACHE_SECONDS:
            return self.last
        return None

    def take(self) -> Readiness:
        started = time.monotonic()
        for dependency in DEPENDENCIES:
            if dependency.name not in self.running:
                self.running[dependency.name] = self.executors[dependency.name].submit(_timed, dependency.check)
        concurrent.futures.wait(self.running.values(), timeout=DEADLINE_SECONDS)
        checks: dict[str, dict[str, Any]] = {}
        for dependency in DEPENDENCIES:
            future = self.running[dependency.name]
            report: dict[str, Any] = {"status": OK, "required": dependency.required}
            if not future.done():
                report.update(status=UNAVAILABLE, error="timeout")  # still running: the next probe waits for it
            else:
                del self.running[dependency.name]
                error = future.exception()
                if error is None:
                    report["seconds"] = round(future.result() or 0.0, 4)
                else:
                    report.update(status=UNAVAILABLE, error=type(error).__name__)
            checks[dependency.name] = report
        readiness = Readiness(checks, taken_at=time.monotonic())
        _log_changes(self.last, readiness)
        self.last = readiness
        logger.debug("Readiness %s in %.3fs", readiness.status, readiness.taken_at - started)
        return readiness

    def close(self) -> None:
        # Each connection belongs to its thread: close it there.
        self.executors["postgresql"].submit(connections.close_all).result(timeout=10)
        self.executors["rabbitmq"].submit(_close_broker).result(timeout=10)
        for executor in self.executors.values():
            executor.shutdown(wait=False, cancel_futures=True)


def _timed(check: Callable[[], None]) -> float:
    started = time.monotonic()
    with untraced():  # a probe every few seconds: no trace of each
        check()
    return time.monotonic() - started


def _close_broker() -> None:
    global _broker
    if _broker is not None:
        _broker.collect()
        _broker = None


def _log_changes(before: Readiness | None, after: Readiness) -> None:
    """Log a dependency going down or coming back, once (not on every probe)."""
    for name, check in after.checks.items():
        was = before.checks[name]["status"] if before is not None else OK
        if check["status"] != was:
            if check["status"] == OK:
                logger.warning("Readiness: %s answers again", name)
            else:
                logger.warning("Readiness: %s unavailable (%s)", name, check.get("error"))


_checker: _Checker | None = None
_checker_lock = threading.Lock()


def _process_checker() -> _Checker:
    global _checker
    with _checker_lock:
        # Threads do not survive a fork: a process forked after a probe (gunicorn --preload) makes its own.
        if _checker is None or _checker.pid != os.getpid():
            _checker = _Checker()
        return _checker


def readiness() -> Readiness:
    """The state of PostgreSQL, Redis and RabbitMQ as this process sees it, at most a second or so old."""
    checker = _process_checker()
    cached = checker.fresh()
    if cached is not None:
        return cached
    # One probe takes the reading; probes arriving meanwhile wait for it and share it.
    if not checker.lock.acquire(timeout=DEADLINE_SECONDS):
        # Another probe is still taking it (a slow machine): its last result, or "don't know".
        return checker.last or Readiness(
            {d.name: {"status": UNAVAILABLE, "required": d.required, "error": "timeout"} for d in DEPENDENCIES},
            taken_at=time.monotonic(),
        )
    try:
        return checker.fresh() or checker.take()
    finally:
        checker.lock.release()


def readiness_reset() -> None:
    """Forget the last result and close the checks' connections (tests; a database being dropped)."""
    global _checker
    with _checker_lock:
        if _checker is not None and _checker.pid == os.getpid():
            _checker.close()
        _checker = None


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """200 while PostgreSQL answers (``ok``, or ``degraded`` when Redis or RabbitMQ does not), else 503."""
    result = readiness()
    body = {"status": result.status, "down": result.down, "checks": result.checks}
    return JsonResponse(body, status=200 if result.ready else 503)
