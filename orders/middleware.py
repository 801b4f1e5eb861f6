"""The two hot requests, answered with what Redis holds before the rest of the stack runs:

- ``GET /api/v1/orders/{id}/``, a customer reading one of their orders (what a storefront polls
  while its customer waits): when Redis holds the token's copy (core/token_cache.py) and the
  order's (orders/cache.py), the token is live, its user an active customer and the order
  theirs, the answer is the order's copy;
- ``POST /api/v1/orders/``, a customer ordering one line (what a storefront sends, and most of a
  flash sale's attempts): when Redis holds the token's copy, the body is plainly valid and the
  customer within their rate limit, the order is placed by ``order_place``, as the view places
  it. ``order_place`` refuses a SKU whose stock mark (inventory/stock_marks.py, read here along
  with the token's copy) shows it sold out without a database query; that ``409 sold_out``, what
  most of a flash sale's attempts get, is answered directly, and whatever else ``order_place``
  raises by the REST framework's exception handler, as the view's would be.

Either reads its copies in one Redis round trip (the rate limit's is another), without the REST
framework, URL resolution or the middleware that has nothing to do for such a request
(sessions, CSRF, messages, the login lockout, whitenoise). What the full path would add is added
by the same code: the request id (django-guid), the security and frame headers (Django's
``SecurityMiddleware`` and ``XFrameOptionsMiddleware``), the Host check, the rate limit (the
view's own throttle class, counting the request once) and every request metric (the two
request-metrics middleware of core/metrics.py, under the view's URL name). tests/orders/test_hot_paths.py
compares the answers byte for byte.

Anything else goes down the whole stack, which answers it as before: another path or method, a
query string, an ``Accept`` asking for something other than JSON, an ``Idempotency-Key``, a body
that is not one plain line, a missing, malformed, expired or revoked token (a revoked one has a
tombstone, which reads as no copy), staff (their permissions are the full path's to check),
someone else's order, a copy missing, Redis unreachable, a rate limit reached, tracing on (so
that every request has its span). The copies are trusted exactly as the full path trusts them
(ARCHITECTURE invariant 10): replaced on commit by every change. The copies read for a request
are its reads further on too (``copies_read_ahead``): an order placed here or by the full path
reads the token's copy and the SKU's mark once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import reverse
from django.utils import timezone
from django_guid.middleware import process_incoming_request, process_outgoing_request
from knox.crypto import hash_token
from knox.settings import knox_settings
from rest_framework.response import Response
from rest_framework.settings import api_settings

from core.copies import copies_read, copies_read_ahead
from core.errors import error_body, response_unlogged
from core.metrics import RequestLatencyMiddleware, RequestMetricsMiddleware
from core.token_cache import token_cache_key, token_copy_customer
from inventory.models import SKU_MAX_LENGTH
from inventory.stock_marks import stock_mark_key
from orders.apis import OrderCreateThrottle
from orders.cache import order_cache_key
from orders.models import MAX_QUANTITY
from orders.payloads import order_payload
from orders.services import OrderItem, SoldOut, order_place

_DETAIL_PATH = re.compile(r"/api/v1/orders/([0-9]{1,18})/")
_LIST_PATH = "/api/v1/orders/"
_JSON_ACCEPTS = frozenset({"", "*/*", "application/json"})
# A body longer than this is not one plain line: the full path reads it.
_MAX_BODY_BYTES = 1024
# What the REST framework adds to every answer of the views, by URL name.
_API_HEADERS = {
    "order-detail": {"Vary": "Accept", "Allow": "GET, HEAD, OPTIONS"},
    "order-list": {"Vary": "Accept", "Allow": "POST, OPTIONS"},
}

_ExceptionHandler = Callable[[Exception, dict[str, Any]], Response | None]


def _unused(request: HttpRequest) -> HttpResponse:
    raise AssertionError("the middleware here only process requests and responses")


class OrderHotPathMiddleware:
    """Answer a customer's read of their own order from Redis, and place their one-line orders
    (refused from the stock mark when it shows the SKU sold out), without the rest of the stack
    (module docstring). First in ``MIDDLEWARE``."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.enabled = not settings.TRACING_ENABLED
        self.prefix = knox_settings.AUTH_HEADER_PREFIX.lower()
        self.metrics_before = RequestLatencyMiddleware(_unused)
        self.metrics_after = RequestMetricsMiddleware(_unused)
        self.security = SecurityMiddleware(_unused)
        self.frame_options = XFrameOptionsMiddleware(_unused)
        self.charset = settings.DEFAULT_CHARSET

    def __call__(self, request: HttpRequest) -> Any:
        response = None
        found: dict[str, Any] = {}  # the copies read, for the full path's own reads of them
        if self.enabled:
            if request.method == "GET":
                match = _DETAIL_PATH.fullmatch(request.path_info)
                if match is not None:
                    response = self._read(request, found, order_id=int(match[1]))
            elif request.method == "POST" and request.path_info == _LIST_PATH:
                response = self._create(request, found)
        if response is not None:
            return response
        if not found:  # nothing read: every other request goes on untouched
            return self.get_response(request)
        with copies_read_ahead(found):
            return self.get_response(request)

    def _read(self, request: HttpRequest, found: dict[str, Any], *, order_id: int) -> HttpResponse | None:
        """The order from its copy, or None for the full path to answer."""
        digest = self._token_digest(request)
        if digest is None:
            return None
        token, order = _copies_read(found, keys=[token_cache_key(digest), order_cache_key(order_id)])
        customer = token_copy_customer(token, now=timezone.now())
        if customer is None or not isinstance(order, list) or len(order) != 2:
            return None
        owner, payload = order
        if customer.id != owner or not self._secure(request):
            return None
        self._begin(request, view="order-detail")
        return self._respond(request, view="order-detail", status=200, body=payload)

    def _create(self, request: HttpRequest, found: dict[str, Any]) -> HttpResponse | None:
        """The order placed, or refused from the SKU's mark; None for the full path to answer."""
        meta = request.META
        if "HTTP_IDEMPOTENCY_KEY" in meta or meta.get("CONTENT_TYPE", "").split(";")[0] != "application/json":
            return None
        digest = self._token_digest(request)
        if digest is None:
            return None
        try:
            if not 0 < int(meta.get("CONTENT_LENGTH") or 0) <= _MAX_BODY_BYTES:
                return None
            sku, quantity = _one_plain_line(json.loads(request.body))
        except (TypeError, ValueError):
            return None
        token, mark = _copies_read(found, keys=[token_cache_key(digest), stock_mark_key(sku)])
        customer = token_copy_customer(token, now=timezone.now())
        if customer is None or not customer.email:
            return None
        if not self._secure(request) or not _throttle_allows(request, customer):
            return None
        self._begin(request, view="order-list")  # what follows is answered here, whatever happens
        # Redis answered (the token's copy is there), so no mark is an answer too: order_place's.
        found[stock_mark_key(sku)] = mark
        try:
            with copies_read_ahead(found):  # order_place's read of the mark is the one made above
                order = order_place(customer=customer, email=None, items=[OrderItem(sku=sku, quantity=quantity)])
        except SoldOut as exc:  # what most of a flash sale's attempts get: answered directly
            body = error_body(code=exc.code, detail=exc.message, status_code=exc.status_code)
            response = self._respond(request, view="order-list", status=exc.status_code, body=body)
            response_unlogged(response)  # as the exception handler leaves it (SoldOut.logged)
            return response
        except Exception as exc:  # answered as the view's exception handler answers it
            return self._error(request, exc, view="order-list")
        location = request.build_absolute_uri(reverse("order-detail", args=[order.pk]))
        headers = {"Location": location}
        return self._respond(request, view="order-list", status=202, body=order_payload(order), headers=headers)

    def _error(self, request: HttpRequest, exc: Exception, *, view: str) -> HttpResponse:
        """The REST framework's answer to ``exc`` (the project's exception handler), as a view of
        ``view`` would have given it."""
        context: dict[str, Any] = {"view": None, "args": (), "kwargs": {}, "request": SimpleNamespace(_request=request)}
        handled = cast(_ExceptionHandler, api_settings.EXCEPTION_HANDLER)(exc, context)
        if handled is None:  # not handled (DEBUG): Django's own error page, as for a view
            raise exc
        # Its own headers (Retry-After, WWW-Authenticate); the content type is the answer's.
        headers = {name: value for name, value in handled.items() if name != "Content-Type"}
        response = self._respond(request, view=view, status=handled.status_code, body=handled.data, headers=headers)
        if getattr(handled, "_has_been_logged", False):  # logged by the handler, or left unlogged
            response_unlogged(response)
        return response

    def _token_digest(self, request: HttpRequest) -> str | None:
        """The digest of the request's token, if it sends one and nothing else rules it out."""
        meta = request.META
        if meta.get("QUERY_STRING") or meta.get("HTTP_ACCEPT", "") not in _JSON_ACCEPTS:
            return None
        credentials = meta.get("HTTP_AUTHORIZATION", "").split()
        if len(credentials) != 2 or credentials[0].lower() != self.prefix:
            return None
        try:
            request.get_host()
            return str(hash_token(credentials[1]))
        except (DisallowedHost, TypeError, ValueError):
            return None

    def _secure(self, request: HttpRequest) -> bool:
        """Whether ``SecurityMiddleware`` lets the request through (no redirect to HTTPS)."""
        return self.security.process_request(request) is None

    def _begin(self, request: HttpRequest, *, view: str) -> None:
        """What the skipped stack does before a view: the request id (for the logs and the
        outbox rows of the work done), the request metrics' start."""
        self.metrics_before.process_request(request)
        process_incoming_request(request)
        self.metrics_after.process_request(request)
        request.resolver_match = SimpleNamespace(view_name=view)  # type: ignore[assignment]

    def _respond(
        self, request: HttpRequest, *, view: str, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        """The answer, with what the skipped stack would have done around it (after ``_begin``)."""
        # As the REST framework's JSONRenderer writes it (compact, UTF-8, these two escaped).
        text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        response = HttpResponse(
            text.encode(),
            status=status,
            content_type="application/json",
            charset=self.charset,  # what the full path's answer reads as: the same header, found once
            headers={**_API_HEADERS[view], **(headers or {})},
        )
        response = self.metrics_after.process_response(request, response)
        response = self.frame_options.process_response(request, response)
        response["Content-Length"] = str(len(response.content))
        response = self.security.process_response(request, response)
        process_outgoing_request(response, request)
        return self.metrics_before.process_response(request, response)


def _copies_read(found: dict[str, Any], *, keys: list[str]) -> list[Any]:
    """The copies of ``keys`` (None for each when Redis is unavailable: the full path reads and
    logs); those there are also left in ``found``."""
    values = copies_read(keys=keys, quiet=True)
    found.update((key, value) for key, value in zip(keys, values, strict=True) if value is not None)
    return values


def _one_plain_line(data: Any) -> tuple[str, int]:
    """``(sku, quantity)`` of a body that is exactly ``{"items": [{"sku", "quantity"}]}`` with
    values the input serializer takes as they are; ValueError for anything else."""
    if not isinstance(data, dict) or data.keys() != {"items"}:
        raise ValueError("not one plain line")
    items = data["items"]
    if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
        raise ValueError("not one plain line")
    line = items[0]
    sku, quantity = line.get("sku"), line.get("quantity")
    if line.keys() != {"sku", "quantity"} or not isinstance(sku, str) or type(quantity) is not int:
        raise ValueError("not one plain line")
    if not (0 < len(sku) <= SKU_MAX_LENGTH and sku == sku.strip() and "\x00" not in sku):
        raise ValueError("not one plain line")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise ValueError("not one plain line")
    return sku, quantity


def _throttle_allows(request: HttpRequest, customer: User) -> bool:
    """The order-creation rate limit, applied as the view applies it: an allowed request is
    counted; a refused one is left to the full path, which refuses it (429) without counting."""
    return OrderCreateThrottle().allow_request(SimpleNamespace(user=customer, META=request.META), None)  # type: ignore[arg-type]
