"""``Idempotency-Key`` for POSTs that change state.

The same key from the same user with the same request within ``KEY_TTL`` answers the first
successful response again and changes nothing; a different request under that key is 422; a
request whose key is still being processed is 409.

The whole request runs in one transaction that first takes a PostgreSQL advisory lock on
(user, key) without waiting: a second request with that key while the first runs cannot take it
(409). The stored response is written in the same transaction as the business change, so they
commit together or not at all, and a crash leaves no half-finished key behind.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from core.advisory_locks import advisory_lock_key
from core.errors import Conflict, DomainError
from core.models import IdempotencyKey
from core.openapi import raises
from core.retention import rows_prune

HEADER = "Idempotency-Key"
KEY_TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255
REPLAYED_HEADERS = ("Location",)


class InvalidIdempotencyKey(DomainError):
    code = "invalid_idempotency_key"


class IdempotencyKeyReused(DomainError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "idempotency_key_reused"


class IdempotencyKeyInProgress(Conflict):
    code = "idempotency_key_in_progress"


def request_fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _try_lock(user_id: int, key: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [advisory_lock_key(f"idempotency:{user_id}:{key}")])
        row = cursor.fetchone()
    return bool(row and row[0])


ViewMethod = Callable[..., Response]


def idempotent(view_method: ViewMethod) -> ViewMethod:
    """Decorate an API view's ``post``. Requests without the header run unchanged."""

    @functools.wraps(view_method)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        user_id = request.user.pk
        if key is None or user_id is None:  # anonymous requests are refused by the view itself
            return view_method(view, request, *args, **kwargs)
        if not key or len(key) > MAX_KEY_LENGTH or not all(" " <= char <= "~" for char in key):
            raise InvalidIdempotencyKey(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.")
        fingerprint = request_fingerprint(request)
        with transaction.atomic(durable=True):
            if not _try_lock(user_id, key):
                raise IdempotencyKeyInProgress("A request with this Idempotency-Key is still being processed.")
            stored = IdempotencyKey.objects.filter(user_id=user_id, key=key).first()
            if stored is not None and stored.created_at < timezone.now() - KEY_TTL:
                stored.delete()
                stored = None
            if stored is not None:
                if stored.request_fingerprint != fingerprint:
                    raise IdempotencyKeyReused("This Idempotency-Key was used with a different request.")
                return Response(stored.response_body, status=stored.response_status, headers=stored.response_headers)
            response = view_method(view, request, *args, **kwargs)
            if status.is_success(response.status_code):
                IdempotencyKey.objects.create(
                    user_id=user_id,
                    key=key,
                    request_fingerprint=fingerprint,
                    response_status=response.status_code,
                    response_body=json.loads(json.dumps(response.data, default=str)),
                    response_headers={h: response[h] for h in REPLAYED_HEADERS if response.has_header(h)},
                )
            return response

    return raises(InvalidIdempotencyKey, IdempotencyKeyReused, IdempotencyKeyInProgress)(wrapper)


def idempotency_key_prune() -> int:
    """Delete keys older than ``IDEMPOTENCY_KEY_RETENTION_HOURS`` (never less than ``KEY_TTL``:
    a younger key still answers its repeats), in batches; returns how many."""
    cutoff = timezone.now() - max(KEY_TTL, timedelta(hours=settings.IDEMPOTENCY_KEY_RETENTION_HOURS))
    return rows_prune(IdempotencyKey.objects.filter(created_at__lt=cutoff), age_field="created_at")
