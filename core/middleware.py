"""Middleware of the project's own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest

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
