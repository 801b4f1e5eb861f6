"""WSGI entry point of the benchmark's gunicorn: the project, plus the bare baselines.

``/bare/...`` is answered by a Django handler with no middleware and its own URLconf
(bench/bare.py); everything else by the project's application as ``config.wsgi`` builds it. The
two share the gunicorn workers, the settings and the database connection of each worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest
from django.http.response import HttpResponseBase

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")

from config.wsgi import application as project_application

BARE_PREFIX = "/bare/"


class BareHandler(WSGIHandler):
    """Django's WSGI handler without middleware, resolving against ``bench.bare``."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        self._middleware_chain = convert_exception_to_response(self._get_response)  # type: ignore[attr-defined]

    def get_response(self, request: HttpRequest) -> HttpResponseBase:
        request.urlconf = "bench.bare"
        return super().get_response(request)


bare_application = BareHandler()


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO", "").startswith(BARE_PREFIX):
        return bare_application(environ, start_response)
    return project_application(environ, start_response)
