"""Login lockout (django-axes): what the client address is, and how a locked-out login is answered.

django-axes counts failed logins, of the API's token endpoint and of the admin's login form
alike (both go through ``django.contrib.auth.authenticate``), separately per username and per
client address, in PostgreSQL. Past ``LOGIN_FAILURE_LIMIT`` failures within
``LOGIN_LOCKOUT_MINUTES``, that username, or that address, is refused before its password is
checked (so a guessing client also stops costing a password hash per try) until the cool-off
has passed since its last failure: 429 with ``Retry-After``, logged.
"""

from __future__ import annotations

import logging
from typing import Any

from axes.helpers import get_cool_off
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from core.errors import DomainError, error_body

logger = logging.getLogger(__name__)


class LoginLockedOut(DomainError):
    """A login refused by the lockout; answered by :func:`lockout_response` (django-axes' middleware)."""

    status_code = 429
    code = "too_many_login_failures"


def client_ip_address(request: HttpRequest) -> str | None:
    """The client's address: ``REMOTE_ADDR``, or, behind ``TRUSTED_PROXY_COUNT`` proxies (load
    balancers) that each append to ``X-Forwarded-For``, the address the outermost one saw.

    Only the entries the trusted proxies added are believed: a client can put anything in the
    header it sends, and that part is to their left.
    """
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    address = request.META.get("REMOTE_ADDR")
    return str(address) if address else None


def lockout_response(request: HttpRequest, original_response: HttpResponse | None, credentials: Any) -> HttpResponse:
    """429 with ``Retry-After``: JSON under /api/ (the API's error shape), a short page elsewhere."""
    cool_off = get_cool_off(request)
    retry_after = int(cool_off.total_seconds()) if cool_off else 0
    username = (credentials or {}).get("username", "") if isinstance(credentials, dict) else ""
    logger.warning(
        "Login refused (locked out): username=%r address=%s path=%s",
        username,
        client_ip_address(request),
        request.path,
    )
    detail = "Too many failed login attempts; try again later."
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            error_body(code=LoginLockedOut.code, detail=detail, status_code=LoginLockedOut.status_code),
            status=LoginLockedOut.status_code,
        )
    else:
        response = HttpResponse(
            f"<!doctype html><title>Too many failed logins</title><h1>Too many failed logins</h1><p>{detail}</p>",
            status=LoginLockedOut.status_code,
        )
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response
