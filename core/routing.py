"""One URL, one view per operation: ``GET`` and ``POST /orders/`` are two views on one path.

Django routes by path only, so a URL whose methods are different operations (list and create)
is served by :class:`MethodRoutedApi`, which hands each request to the view of its method. The
OpenAPI document sees the operations' own views (``endpoints_by_method``, a drf-spectacular
preprocessing hook in the settings), exactly as if each were the only view on the path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django.http import HttpRequest, HttpResponseBase
from rest_framework.views import APIView

Handler = Callable[..., HttpResponseBase]


class MethodRoutedApi(APIView):
    """Serve one path with one ``APIView`` per HTTP method: ``MethodRoutedApi.view(get=..., post=...)``.

    A method no view serves is answered as DRF answers it (authentication first, then 405 with
    ``Allow``); ``OPTIONS`` too.
    """

    handlers: ClassVar[dict[str, Handler]] = {}

    @classmethod
    def view(cls, **views: type[APIView]) -> Handler:
        handlers: dict[str, Handler] = {method: view.as_view() for method, view in views.items()}
        if "get" in handlers:
            handlers.setdefault("head", handlers["get"])
        name = "".join(view.__name__.removesuffix("Api") for view in views.values())
        routed: type[MethodRoutedApi] = type(f"{name}Routes", (cls,), {"handlers": handlers})
        function = routed.as_view()
        function.views_by_method = handlers  # type: ignore[attr-defined]  # read by endpoints_by_method
        return function

    @property
    def allowed_methods(self) -> list[str]:
        return [method.upper() for method in self.http_method_names if method in self.handlers or method == "options"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        handler = self.handlers.get((request.method or "").lower())
        if handler is None:
            return super().dispatch(request, *args, **kwargs)
        return handler(request, *args, **kwargs)


def endpoints_by_method(endpoints: list[tuple[str, str, str, Any]], **kwargs: Any) -> list[tuple[str, str, str, Any]]:
    """drf-spectacular preprocessing hook: document each method of a routed path by its own view."""
    return [
        (path, path_regex, method, getattr(callback, "views_by_method", {}).get(method.lower(), callback))
        for path, path_regex, method, callback in endpoints
    ]
