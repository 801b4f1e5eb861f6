"""One error shape for the whole API.

Every error answer is drf-standardized-errors' shape::

    {"type": "client_error", "errors": [{"code": "invalid_transition", "detail": "...", "attr": null}]}

Services raise :class:`DomainError` subclasses (no HTTP in the business layer); this module maps
them, and outages of PostgreSQL, RabbitMQ or Redis, onto that shape. A service refusing input
field by field raises :class:`InvalidFields`, answered as the input serializer's own errors are
(``"type": "validation_error"``, one entry per field).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from django import db
from django.http.response import HttpResponseBase
from drf_standardized_errors.handler import ExceptionHandler
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import exceptions, status
from rest_framework.exceptions import ErrorDetail
from rest_framework.response import Response

logger = logging.getLogger(__name__)

# Exceptions that mean a dependency is unreachable, with the name reported to the client.
DEPENDENCY_ERRORS: tuple[tuple[type[BaseException], str], ...] = (
    (db.OperationalError, "postgresql"),
    (db.InterfaceError, "postgresql"),
    (BrokerError, "rabbitmq"),
    (RedisConnectionError, "redis"),
    (RedisTimeoutError, "redis"),
)


class DomainError(Exception):
    """A business rule refused the operation. Subclasses set the HTTP status and code."""

    status_code: ClassVar[int] = status.HTTP_400_BAD_REQUEST
    code: ClassVar[str] = "invalid"
    # Whether Django logs the answer (a warning for every 4xx): False for an expected answer that
    # comes in floods and is counted elsewhere (a sold-out refusal in a flash sale).
    logged: ClassVar[bool] = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FieldError:
    attr: str  # the field as the API names it: "email", "items.1.sku"
    code: str
    message: str


class InvalidFields(DomainError):
    """Well-formed input that a business rule refuses, field by field (400, like a serializer's)."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(f"{error.attr}: {error.message}" for error in errors))
        self.errors = list(errors)

    def as_validation_error(self) -> exceptions.ValidationError:
        detail: dict[str, list[ErrorDetail]] = {}
        for error in self.errors:
            detail.setdefault(error.attr, []).append(ErrorDetail(error.message, code=error.code))
        return exceptions.ValidationError(detail)


class Conflict(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class NotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class RequestTooLarge(DomainError):
    """A body over ``API_MAX_BODY_BYTES``: answered by core.middleware before any view runs."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "request_too_large"


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A service this request needs is unavailable; try again shortly."
    default_code = "service_unavailable"


class _DomainAPIException(exceptions.APIException):
    def __init__(self, error: DomainError) -> None:
        self.status_code = error.status_code
        super().__init__(detail=error.message, code=error.code)


def dependency_name(exc: BaseException) -> str | None:
    """The name of the unreachable dependency ``exc`` stands for, or None."""
    for exc_type, name in DEPENDENCY_ERRORS:
        if isinstance(exc, exc_type):
            return name
    return None


class ApiExceptionHandler(ExceptionHandler):
    def run(self) -> Response | None:
        response = super().run()
        if response is not None and isinstance(self.exc, DomainError) and not self.exc.logged:
            response_unlogged(response)
        return response

    def convert_known_exceptions(self, exc: Exception) -> Exception:
        if isinstance(exc, InvalidFields):
            return exc.as_validation_error()
        if isinstance(exc, DomainError):
            return _DomainAPIException(exc)
        dependency = dependency_name(exc)
        if dependency is not None:
            logger.warning("Dependency %s unavailable: %s", dependency, exc)
            return ServiceUnavailable(f"{dependency} is unavailable; try again shortly.")
        return super().convert_known_exceptions(exc)


def response_unlogged(response: HttpResponseBase) -> None:
    """Keep Django from logging this answer (``django.request`` warns of every 4xx)."""
    response._has_been_logged = True  # type: ignore[attr-defined]  # what django.utils.log.log_response checks


def error_body(*, code: str, detail: str, status_code: int) -> dict[str, Any]:
    """The standard error body, for answers produced outside DRF views."""
    error_type = "server_error" if status_code >= 500 else "client_error"
    return {"type": error_type, "errors": [{"code": code, "detail": detail, "attr": None}]}
