"""Logging in and out of the API: ``POST /api/v1/auth/token/`` and ``POST /api/v1/auth/logout/``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate, logout
from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.lockout import LoginLockedOut
from core.models import ApiToken
from core.openapi import raises
from core.parsers import BoundedJSONParser
from core.tokens import api_token_issue, api_token_revoke


class TokenCreateApi(APIView):
    """Exchange a username and password for a new API token, valid ``API_TOKEN_TTL_HOURS``."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    # JSON only: an anonymous endpoint must not accept multipart bodies (files spooled to disk).
    parser_classes = [BoundedJSONParser]

    class InputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "TokenCreateInput"

        username = serializers.CharField(max_length=150, trim_whitespace=False)
        password = serializers.CharField(max_length=128, trim_whitespace=False, style={"input_type": "password"})

    class OutputSerializer(serializers.Serializer[dict[str, Any]]):
        class Meta:
            ref_name = "TokenCreateOutput"

        token = serializers.CharField()
        expires_at = serializers.DateTimeField()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer}, operation_id="auth_token_create")
    @raises(LoginLockedOut)
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # The request goes along so that the login lockout (django-axes) sees the client address.
        user = authenticate(request._request, **serializer.validated_data)
        if user is None:
            raise serializers.ValidationError(
                {"non_field_errors": ["Unable to log in with the given credentials."]}, code="authorization"
            )
        issued = api_token_issue(user=user)
        # As Django's login() does: last_login is updated, and the lockout's count for this
        # username and address starts again.
        user_logged_in.send(sender=type(user), request=request._request, user=user)
        data = {"token": issued.token, "expires_at": issued.expires_at}
        return Response(self.OutputSerializer(data).data)


class LogoutApi(APIView):
    """Revoke the token the request was made with (a session is ended)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=None,
        responses={204: None},
        operation_id="auth_logout",
        description="Revokes the token sent with this request: it is refused from now on.",
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiToken):
            api_token_revoke(token=request.auth)
        else:
            logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)
