"""The OpenAPI schema of every error answer.

drf-standardized-errors' ``AutoSchema`` documents the errors DRF raises itself (authentication,
permissions, throttling, parse errors...). This subclass adds the business layer's answers: a view
method names, with :func:`raises`, the :class:`~core.errors.DomainError` classes it can answer
with, and each of their status codes is documented with the codes those classes carry (the enums
the services raise, never a copy), next to DRF's own codes for that status where DRF can answer
it too. Every operation also declares 503 (``ERROR_SCHEMAS`` in the settings): any of them can
meet a dependency outage.

Validation errors (400, ``validation_error``) are documented by their shape, with ``attr`` and
``code`` as strings: the library's per-field enums name list items ``items.INDEX.sku`` where the
API answers ``items.0.sku``, and miss codes raised outside the fields' ``error_messages``, so a
client validating answers against them would refuse real ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import PolymorphicProxySerializer
from drf_standardized_errors.handler import exception_handler as standardized_errors_handler
from drf_standardized_errors.openapi import AutoSchema as StandardizedErrorsAutoSchema
from drf_standardized_errors.openapi_serializers import (
    ClientErrorEnum,
    ErrorCode401Enum,
    ErrorCode403Enum,
    ErrorCode404Enum,
    ErrorCode405Enum,
    ErrorCode406Enum,
    ErrorCode415Enum,
    ErrorCode429Enum,
    ErrorCode500Enum,
    ParseErrorCodeEnum,
    ServerErrorEnum,
    ValidationErrorEnum,
)
from inflection import camelize
from rest_framework import serializers

from core.errors import DomainError, RequestTooLarge, ServiceUnavailable
from core.pagination import CursorPage

F = TypeVar("F", bound=Callable[..., Any])

_RAISES = "domain_errors"

# The codes DRF itself answers with, by status (the library's own enums).
DRF_ERROR_CODES: dict[str, list[str]] = {
    "400": list(ParseErrorCodeEnum.values),
    "401": list(ErrorCode401Enum.values),
    "403": list(ErrorCode403Enum.values),
    "404": list(ErrorCode404Enum.values),
    "405": list(ErrorCode405Enum.values),
    "406": list(ErrorCode406Enum.values),
    "415": list(ErrorCode415Enum.values),
    "429": list(ErrorCode429Enum.values),
    "500": list(ErrorCode500Enum.values),
}
SERVICE_UNAVAILABLE_CODES = [(ServiceUnavailable.default_code, ServiceUnavailable.default_code)]


def raises(*errors: type[DomainError]) -> Callable[[F], F]:
    """Declare the domain errors a view method (``get``, ``post``...) can answer with."""

    def declare(view_method: F) -> F:
        setattr(view_method, _RAISES, (*getattr(view_method, _RAISES, ()), *errors))
        return view_method

    return declare


def domain_error_codes(errors: Iterable[type[DomainError]]) -> dict[str, list[str]]:
    """The codes of ``errors`` by HTTP status (as strings, like the schema's keys), in declaration order."""
    codes: dict[str, list[str]] = {}
    for error in errors:
        status_codes = codes.setdefault(str(error.status_code), [])
        if str(error.code) not in status_codes:
            status_codes.append(str(error.code))
    return codes


def error_response_serializer(component_name: str, status_code: str, codes: list[str]) -> type[serializers.Serializer]:
    """drf-standardized-errors' error shape, with ``code`` limited to ``codes``."""
    error_type = ServerErrorEnum.choices if status_code.startswith("5") else ClientErrorEnum.choices

    class ErrorSerializer(serializers.Serializer):
        code = serializers.ChoiceField(choices=[(code, code) for code in codes])
        detail = serializers.CharField()
        attr = serializers.CharField(allow_null=True)

        class Meta:
            # the library's enum hook leaves components with this suffix alone: codes stay inline
            ref_name = f"{component_name}ErrorComponent"

    class ErrorResponseSerializer(serializers.Serializer):
        type = serializers.ChoiceField(choices=error_type)
        errors = ErrorSerializer(many=True)  # type: ignore[assignment]  # the answer's key, not Serializer.errors

        class Meta:
            ref_name = component_name

    return ErrorResponseSerializer


class ValidationErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    attr = serializers.CharField(allow_null=True)


class ValidationErrorResponseSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ValidationErrorEnum.choices)
    errors = ValidationErrorSerializer(many=True)  # type: ignore[assignment]  # the answer's key, not Serializer.errors

    class Meta:
        ref_name = "ValidationErrorResponse"


class Error503Serializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=SERVICE_UNAVAILABLE_CODES)
    detail = serializers.CharField()
    attr = serializers.CharField(allow_null=True)


class ErrorResponse503Serializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ServerErrorEnum.choices)
    errors = Error503Serializer(many=True)  # type: ignore[assignment]  # the answer's key, not Serializer.errors


# Methods whose requests carry a body, which may be refused as too large (413).
BODY_METHODS = ("POST", "PUT", "PATCH")


class AutoSchema(StandardizedErrorsAutoSchema):
    def _domain_error_codes(self) -> dict[str, list[str]]:
        view_method = getattr(self.view, self.method.lower(), None)
        errors = getattr(view_method, _RAISES, ())
        if self.method in BODY_METHODS:  # every request body is bounded (core.middleware)
            errors = (*errors, RequestTooLarge)
        return domain_error_codes(errors)

    def _get_allowed_error_status_codes(self) -> list[str]:
        allowed = super()._get_allowed_error_status_codes()
        return allowed + [status_code for status_code in self._domain_error_codes() if status_code not in allowed]

    def _should_add_validation_error_response(self) -> bool:
        # A cursor-paginated list answers a malformed cursor or page size, and its filters' bad
        # values, with a validation error (core.pagination); the library only expects one of a
        # request body or django-filter.
        paginator = getattr(self.view, "pagination_class", None)
        if self.method == "GET" and isinstance(paginator, type) and issubclass(paginator, CursorPage):
            return True
        return super()._should_add_validation_error_response()

    def _should_add_error_response(self, responses: dict[str, Any], status_code: str) -> bool:
        if status_code in self._domain_error_codes():
            return status_code not in responses and self.view.get_exception_handler() is standardized_errors_handler
        return super()._should_add_error_response(responses, status_code)

    def _component_name(self, status_code: str) -> str:
        return f"{camelize(self.get_operation_id())}ErrorResponse{status_code}"

    def _get_error_response_serializer(self, status_code: str) -> Any:
        domain_codes = self._domain_error_codes().get(status_code)
        if status_code == "400" or not domain_codes:
            return super()._get_error_response_serializer(status_code)
        drf_codes = DRF_ERROR_CODES.get(status_code, []) if super()._should_add_error_response({}, status_code) else []
        return error_response_serializer(self._component_name(status_code), status_code, drf_codes + domain_codes)

    def _get_http400_serializer(self) -> Any:
        variants: dict[str, Any] = {}
        if self._should_add_validation_error_response():
            variants[ValidationErrorEnum.VALIDATION_ERROR.value] = ValidationErrorResponseSerializer
        client_codes = DRF_ERROR_CODES["400"] if self._should_add_parse_error_response() else []
        client_codes = client_codes + self._domain_error_codes().get("400", [])
        if client_codes:
            name = f"{self._component_name('400')}ClientError"
            variants[ClientErrorEnum.CLIENT_ERROR.value] = error_response_serializer(name, "400", client_codes)
        return PolymorphicProxySerializer(
            component_name=self._component_name("400"), serializers=variants, resource_type_field_name="type"
        )


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Token <token>`` (core/tokens.py) in the OpenAPI document."""

    target_class = "core.tokens.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")  # noqa: S106 (a scheme)
