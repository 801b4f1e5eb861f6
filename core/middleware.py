"""Middleware of the project's own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse, JsonResponse

from core.errors import RequestTooLarge, error_body

# DRF's TokenAuthentication keyword (and the one of tokens that also say "Bearer").
TOKEN_SCHEMES = ("token ", "bearer ")


def sends_a_token(request: HttpRequest) -> bool:
    """Whether the request authenticates with an ``Authorization`` token header: then it is
    authenticated by the token alone (DRF answers 401 for a bad one and never falls back to the
    session)."""
    return request.META.get("HTTP_AUTHORIZATION", "")[:7].lower().startswith(TOKEN_SCHEMES)


class BrowserSessionMiddleware:
    """Django's session, session-authentication and messages middleware, in that order, for the
    requests of a browser (the admin, the browsable API, the login forms); a request that sends
    a token skips all three. Use in place of those three in ``MIDDLEWARE``.

    A request that skips them still has ``request.user`` (anonymous until DRF authenticates the
    token) and no ``request.session`` nor messages: nothing on the token path reads them. CSRF
    stays Django's own middleware: DRF's views are exempt from it (``SessionAuthentication``
    enforces CSRF for the requests it authenticates), so it costs a token request a cookie lookup.
    """

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.browser = SessionMiddleware(AuthenticationMiddleware(MessageMiddleware(get_response)))

    def __call__(self, request: HttpRequest) -> Any:
        if sends_a_token(request):
            request.user = AnonymousUser()
            return self.get_response(request)
        return self.browser(request)


class HostileInputMiddleware:
    """Refuses, before anything reads it, what no endpoint can take:

    - under ``/api/``, a body over ``API_MAX_BODY_BYTES`` (413) or a ``Content-Length`` that is
      not a number (400): the body is never read, so a client cannot make a process buffer or
      parse 100 MB (Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` only applies to forms, not to the
      stream DRF's parsers read);
    - a NUL character in the path, or outside /api/ in the query string (400): PostgreSQL cannot
      store or compare text containing one, and no URL or admin search of ours has one.

    Answers are JSON in the API's error shape under ``/api/``, plain text elsewhere.
    """

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        api = request.path.startswith("/api/")
        # (Under /api/ a NUL in a query parameter is refused by the view's filter serializer,
        # which names the parameter.)
        if "\x00" in request.path or (not api and "\x00" in unquote(request.META.get("QUERY_STRING", ""))):
            return _refusal(request, 400, "bad_request", "NUL characters are not allowed in URLs.")
        if api:
            declared = request.META.get("CONTENT_LENGTH") or "0"
            try:
                length = int(declared)
            except ValueError:
                return _refusal(request, 400, "bad_request", "Content-Length must be a number.")
            if length > settings.API_MAX_BODY_BYTES:
                return _refusal(
                    request,
                    RequestTooLarge.status_code,
                    RequestTooLarge.code,
                    f"Request bodies are limited to {settings.API_MAX_BODY_BYTES} bytes.",
                )
        return self.get_response(request)


def _refusal(request: HttpRequest, status: int, code: str, detail: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(code=code, detail=detail, status_code=status), status=status)
    return HttpResponse(detail, status=status, content_type="text/plain; charset=utf-8")
