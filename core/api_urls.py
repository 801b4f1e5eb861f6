"""``/api/v1/auth/``: log in for a token, log out."""

from django.urls import path

from core import apis

urlpatterns = [
    path("auth/token/", apis.TokenCreateApi.as_view(), name="auth-token"),
    path("auth/logout/", apis.LogoutApi.as_view(), name="auth-logout"),
]
