from __future__ import annotations

from django.contrib.auth.models import User
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request


def authenticated_user(request: Request) -> User:
    """The request's user, for views whose permission classes already refused anonymous users."""
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user
