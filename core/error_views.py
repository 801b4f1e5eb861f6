"""Error pages: JSON under /api/, Django's defaults elsewhere."""

from __future__ import annotations

import logging
import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from core.errors import ServiceUnavailable, dependency_name, error_body

logger = logging.getLogger(__name__)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


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
