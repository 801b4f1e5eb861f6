"""Baselines: what the least a DRF service could do per request costs on the same server.

Both views use the project's REST framework defaults (token authentication, JSON renderer),
so our endpoints are compared with the same framework cost, not with a bare WSGI function.
"""

from __future__ import annotations

import functools

from django.db import transaction
from drf_spectacular.utils import extend_schema
from kombu import Exchange, Queue
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.models import BenchRow
from config.celery_app import app

# A durable quorum queue like the work queues, so a confirm costs what theirs does; nobody consumes it
# (the harness purges it).
BENCH_QUEUE = Queue(
    "bench",
    Exchange("bench", type="direct", durable=True),
    routing_key="bench",
    durable=True,
    queue_arguments={"x-queue-type": "quorum"},
)


def _publish(row_id: int) -> None:
    # The broker transport has publisher confirms on (config/celery_app.py): publish() returns
    # once RabbitMQ confirmed the message.
    with app.producer_or_acquire() as producer:
        producer.publish(
            {"id": row_id}, exchange=BENCH_QUEUE.exchange, routing_key="bench", declare=[BENCH_QUEUE], retry=False
        )


@extend_schema(exclude=True)
class WriteBaselineApi(APIView):
    """Insert one row and publish one message after commit."""

    def post(self, request: Request) -> Response:
        with transaction.atomic():
            row = BenchRow.objects.create(payload=request.data)
            transaction.on_commit(functools.partial(_publish, row.pk))
        return Response({"id": row.pk}, status=status.HTTP_201_CREATED)


@extend_schema(exclude=True)
class ReadBaselineApi(APIView):
    """Read one row and answer it as JSON."""

    def get(self, request: Request, row_id: int) -> Response:
        row = BenchRow.objects.values("id", "payload", "created_at").get(pk=row_id)
        return Response(row)


@extend_schema(exclude=True)
class ConstantBaselineApi(APIView):
    """A constant answer: the framework's cost (middleware, token authentication, DRF) alone."""

    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})
