"""Error pages: JSON under /api/, Django's defaults elsewhere."""

from __future__ import annotations

import logging
import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import csrf, defaults

from core.errors import ServiceUnavailable, dependency_name, error_body

logger = logging.getLogger(__name__)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's answer to what its middleware refuses (a host not in ALLOWED_HOSTS, a malformed
    request): JSON under /api/ like every other API error."""
    if _is_api(request):
        return JsonResponse(error_body(code="bad_request", detail="Bad request.", status_code=400), status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(
            error_body(code="permission_denied", detail="Permission denied.", status_code=403), status=403
        )
    return defaults.permission_denied(request, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if _is_api(request):
        return JsonResponse(
            error_body(code="csrf_failed", detail=f"CSRF verification failed: {reason}", status_code=403), status=403
        )
    return csrf.csrf_failure(request, reason)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body(code="not_found", detail="Not found.", status_code=404), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Called by Django while it handles an uncaught exception, so sys.exc_info() is set."""
    exc = sys.exc_info()[1]
    dependency = dependency_name(exc) if exc is not None else None
    if dependency is not None:
        return JsonResponse(
            error_body(
                code=ServiceUnavailable.default_code,
                detail=f"{dependency} is unavailable; try again shortly.",
                status_code=503,
            ),
            status=503,
        )
    if _is_api(request):
        return JsonResponse(
            error_body(code="error", detail="A server error occurred.", status_code=500),
            status=500,
        )
    return defaults.server_error(request)
