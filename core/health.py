"""Liveness and readiness probes.

``/healthz`` answers while the process is up. ``/readyz`` really talks to PostgreSQL, Redis and
RabbitMQ, each with a short timeout, and names the one that does not answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from kombu import Connection

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0


def check_postgresql() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> None:
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
        socket_timeout=CHECK_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    finally:
        client.close()


def check_rabbitmq() -> None:
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=CHECK_TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(max_retries=1, timeout=int(CHECK_TIMEOUT_SECONDS))


CHECKS: dict[str, Callable[[], None]] = {
    "postgresql": check_postgresql,
    "redis": check_redis,
    "rabbitmq": check_rabbitmq,
}


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # any failure means "not ready"; the reason is logged
            logger.warning("Readiness check %s failed: %s", name, exc)
            results[name] = "down"
        else:
            results[name] = "ok"
    down = [name for name, result in results.items() if result != "ok"]
    body = {"status": "ok" if not down else "unavailable", "checks": results, "down": down}
    return JsonResponse(body, status=503 if down else 200)
