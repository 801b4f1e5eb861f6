"""Bare baselines: the least Django can do per request on the same gunicorn.

Served by :class:`BareHandler` (bench/wsgi.py), a Django WSGI handler with no middleware at all,
no authentication and no REST framework, under ``/bare/``: the physical limit of the stack, as
against the framework baselines of bench/views.py, which carry the project's middleware and
token authentication. Reachable only through ``bench.wsgi`` (the benchmark's gunicorn).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from bench.models import BenchRow
from bench.views import _publish

# About the size of an order's representation with one line.
_DOCUMENT: dict[str, Any] = {
    "id": 1,
    "status": "reserved",
    "email": "customer@bench.example",
    "items": [{"sku": "BENCH-1", "name": "Bench product", "quantity": 1, "unit_price": "9.50", "line_total": "9.50"}],
    "total": "9.50",
    "currency": "USD",
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
    "reserved_at": "2026-01-01T00:00:00Z",
    "expires_at": "2026-01-01T00:30:00Z",
    "paid_at": None,
}


def bare_json(request: HttpRequest) -> HttpResponse:
    """A constant JSON document: a Django view and its JSON encoding, nothing else."""
    return JsonResponse(_DOCUMENT)


@csrf_exempt
def bare_write(request: HttpRequest) -> HttpResponse:
    """Insert one row, publish one persistent message with publisher confirms after commit."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    with transaction.atomic():
        row = BenchRow.objects.create(payload=json.loads(request.body or b"{}"))
        transaction.on_commit(functools.partial(_publish, row.pk))
    return JsonResponse({"id": row.pk}, status=201)


urlpatterns = [
    path("bare/json/", bare_json),
    path("bare/write/", bare_write),
]
